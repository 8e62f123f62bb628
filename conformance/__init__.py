"""Execution conformance harnesses that run published BPMN test suites through bpmn_server's services."""
