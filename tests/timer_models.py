"""BPMN models of the timer tests: short timers, reminders and escalations, timer start events."""

from __future__ import annotations

from .models import definitions


def intermediate_timer(process_id: str = "wait", duration: str = "PT2S") -> bytes:
    """start -> wait <duration> -> script sets fired -> end."""
    return definitions(f"""
  <bpmn:process id="{process_id}" name="Wait" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait_timer" name="Wait {duration}">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>{duration}</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_timer"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait_timer" targetRef="end"/>
  </bpmn:process>""")


def approval(process_id: str = "approval", *, reminder: str = "R3/P1D", deadline: str = "P5D",
             due_date: str | None = None) -> bytes:
    """"Approve refund" (managers) with a repeating reminder and an interrupting deadline that routes
    the decision to the finance leads."""
    due = f' camunda:dueDate="{due_date}"' if due_date else ""
    return definitions(f"""
  <bpmn:process id="{process_id}" name="Approval" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="approve" name="Approve refund" camunda:candidateGroups="managers"{due}>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="daily_reminder" name="Daily reminder" cancelActivity="false" attachedToRef="approve">
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeCycle>{reminder}</bpmn:timeCycle></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:boundaryEvent id="approval_overdue" name="Approval overdue" attachedToRef="approve">
      <bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>{deadline}</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:endEvent id="reminder_sent"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:userTask id="escalated_approval" name="Decide overdue refund" camunda:candidateGroups="finance-leads">
      <bpmn:incoming>f4</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="approved"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="escalated_done"><bpmn:incoming>f5</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="approve"/>
    <bpmn:sequenceFlow id="f2" sourceRef="approve" targetRef="approved"/>
    <bpmn:sequenceFlow id="f3" sourceRef="daily_reminder" targetRef="reminder_sent"/>
    <bpmn:sequenceFlow id="f4" sourceRef="approval_overdue" targetRef="escalated_approval"/>
    <bpmn:sequenceFlow id="f5" sourceRef="escalated_approval" targetRef="escalated_done"/>
  </bpmn:process>""")


def escalation_subprocess(process_id: str = "escalating", *, after: str = "P2D") -> bytes:
    """"Check request" (clerks) inside a sub-process; in parallel, after ``after`` an escalation is
    thrown; the escalation boundary event on the sub-process routes the case to the finance leads."""
    return definitions(f"""
  <bpmn:escalation id="esc_slow" name="Too slow" escalationCode="SLOW"/>
  <bpmn:process id="{process_id}" name="Escalating" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:subProcess id="handle" name="Handle request">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:startEvent id="sub_start"><bpmn:outgoing>s1</bpmn:outgoing></bpmn:startEvent>
      <bpmn:parallelGateway id="fork"><bpmn:incoming>s1</bpmn:incoming>
        <bpmn:outgoing>s2</bpmn:outgoing><bpmn:outgoing>s3</bpmn:outgoing></bpmn:parallelGateway>
      <bpmn:userTask id="check" name="Check request" camunda:candidateGroups="clerks">
        <bpmn:incoming>s2</bpmn:incoming><bpmn:outgoing>s4</bpmn:outgoing>
      </bpmn:userTask>
      <bpmn:endEvent id="checked"><bpmn:incoming>s4</bpmn:incoming></bpmn:endEvent>
      <bpmn:intermediateCatchEvent id="patience" name="Patience">
        <bpmn:incoming>s3</bpmn:incoming><bpmn:outgoing>s5</bpmn:outgoing>
        <bpmn:timerEventDefinition><bpmn:timeDuration>{after}</bpmn:timeDuration></bpmn:timerEventDefinition>
      </bpmn:intermediateCatchEvent>
      <bpmn:endEvent id="raise_escalation" name="Too slow">
        <bpmn:incoming>s5</bpmn:incoming>
        <bpmn:escalationEventDefinition escalationRef="esc_slow"/>
      </bpmn:endEvent>
      <bpmn:sequenceFlow id="s1" sourceRef="sub_start" targetRef="fork"/>
      <bpmn:sequenceFlow id="s2" sourceRef="fork" targetRef="check"/>
      <bpmn:sequenceFlow id="s3" sourceRef="fork" targetRef="patience"/>
      <bpmn:sequenceFlow id="s4" sourceRef="check" targetRef="checked"/>
      <bpmn:sequenceFlow id="s5" sourceRef="patience" targetRef="raise_escalation"/>
    </bpmn:subProcess>
    <bpmn:boundaryEvent id="escalated" name="Escalated to the leads" attachedToRef="handle">
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:escalationEventDefinition escalationRef="esc_slow"/>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="lead_decides" name="Lead decides" camunda:candidateGroups="finance-leads">
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="done"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="lead_done"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="handle"/>
    <bpmn:sequenceFlow id="f2" sourceRef="handle" targetRef="done"/>
    <bpmn:sequenceFlow id="f3" sourceRef="escalated" targetRef="lead_decides"/>
    <bpmn:sequenceFlow id="f4" sourceRef="lead_decides" targetRef="lead_done"/>
  </bpmn:process>""")


def timer_start(process_id: str = "scheduled", *, kind: str = "timeCycle", text: str = "R/P1D",
                name: str = "Scheduled") -> bytes:
    """A process started by a timer start event; its only step is a user task for the clerks."""
    return definitions(f"""
  <bpmn:process id="{process_id}" name="{name}" isExecutable="true">
    <bpmn:startEvent id="tick" name="Every period">
      <bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:{kind}>{text}</bpmn:{kind}></bpmn:timerEventDefinition>
    </bpmn:startEvent>
    <bpmn:userTask id="check" name="Daily check" camunda:candidateGroups="clerks">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="tick" targetRef="check"/>
    <bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="end"/>
  </bpmn:process>""")


def message_or_timeout(process_id: str = "race", timeout: str = "PT1H") -> bytes:
    """An event-based gateway racing the customer's answer (message) against a timeout."""
    return definitions(f"""
  <bpmn:message id="msg_answer" name="customer-answer"/>
  <bpmn:process id="{process_id}" name="Race" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:eventBasedGateway id="wait_for"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing><bpmn:outgoing>f3</bpmn:outgoing></bpmn:eventBasedGateway>
    <bpmn:intermediateCatchEvent id="answer" name="Answer received">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="msg_answer"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="timeout" name="No answer">
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>{timeout}</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="answered"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="timed_out"><bpmn:incoming>f5</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_for"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait_for" targetRef="answer"/>
    <bpmn:sequenceFlow id="f3" sourceRef="wait_for" targetRef="timeout"/>
    <bpmn:sequenceFlow id="f4" sourceRef="answer" targetRef="answered"/>
    <bpmn:sequenceFlow id="f5" sourceRef="timeout" targetRef="timed_out"/>
  </bpmn:process>""")


def parallel_timers(process_id: str = "fan", count: int = 5, first: int = 60) -> bytes:
    """start -> fork into ``count`` branches, branch i waits PT<first + i>S -> join -> end: ``count``
    timers per instance, due one second apart, so the fault and cluster tests make many timers with
    few instance starts and each firing is one timer (never two of one instance due together)."""
    branches = "".join(f"""
    <bpmn:intermediateCatchEvent id="t{i}" name="Wait {first + i} s">
      <bpmn:incoming>a{i}</bpmn:incoming><bpmn:outgoing>b{i}</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT{first + i}S</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="a{i}" sourceRef="fork" targetRef="t{i}"/>
    <bpmn:sequenceFlow id="b{i}" sourceRef="t{i}" targetRef="join"/>""" for i in range(count))
    outgoing = "".join(f"<bpmn:outgoing>a{i}</bpmn:outgoing>" for i in range(count))
    incoming = "".join(f"<bpmn:incoming>b{i}</bpmn:incoming>" for i in range(count))
    return definitions(f"""
  <bpmn:process id="{process_id}" name="Fan out" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:parallelGateway id="fork"><bpmn:incoming>f1</bpmn:incoming>{outgoing}</bpmn:parallelGateway>{branches}
    <bpmn:parallelGateway id="join">{incoming}<bpmn:outgoing>f2</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="join" targetRef="end"/>
  </bpmn:process>""")
