"""BPMN documents: lossless XML tree, XSD and semantic validation, timer texts, expressions, Spiff specs."""
