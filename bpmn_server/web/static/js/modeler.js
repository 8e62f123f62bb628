/* The modeler page: bpmn-js Modeler loading a version's XML (or a blank process), warning about
   unsaved changes, and saving through POST /modeler/save (CSRF header), which validates and deploys
   a new version and answers with its findings, drawn on the diagram. */
(function () {
  'use strict';
  var container = document.getElementById('modeler-canvas');
  if (!container || !window.BpmnJS) { return; }
  var helpers = window.BpmnServer;
  var saveButton = document.getElementById('save-button');
  var state = document.getElementById('save-state');
  var fileName = document.getElementById('file-name');
  var findingsList = document.getElementById('modeler-findings');
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute('content');
  var modeler = new window.BpmnJS({ container: container });
  var dirty = false;

  function blankDiagram() {
    var id = 'Process_' + Math.random().toString(36).slice(2, 9);
    return '<?xml version="1.0" encoding="UTF-8"?>\n' +
      '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" ' +
      'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" ' +
      'id="Definitions_' + id + '" targetNamespace="http://bpmn.io/schema/bpmn">\n' +
      '  <bpmn:process id="' + id + '" name="New process" isExecutable="true">\n' +
      '    <bpmn:startEvent id="StartEvent_1" name="Start"/>\n' +
      '  </bpmn:process>\n' +
      '  <bpmndi:BPMNDiagram id="BPMNDiagram_1"><bpmndi:BPMNPlane id="BPMNPlane_1" bpmnElement="' + id + '">\n' +
      '    <bpmndi:BPMNShape id="StartEvent_1_di" bpmnElement="StartEvent_1"><dc:Bounds x="180" y="160" width="36" height="36"/></bpmndi:BPMNShape>\n' +
      '  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>\n' +
      '</bpmn:definitions>\n';
  }

  function setState(text, isDirty) {
    state.textContent = text;
    state.classList.toggle('dirty', !!isDirty);
  }

  function listFindings(findings) {
    findingsList.textContent = '';
    if (!findings.length) {
      var none = document.createElement('li');
      none.className = 'empty';
      none.textContent = 'No validation findings.';
      findingsList.appendChild(none);
      return;
    }
    findings.forEach(function (f) {
      var item = document.createElement('li');
      item.className = 'severity-' + f.severity;
      var badge = document.createElement('span');
      badge.className = 'badge badge-' + f.severity;
      badge.textContent = f.severity;
      item.appendChild(badge);
      item.appendChild(document.createTextNode(' ' + f.message));
      var where = document.createElement('div');
      where.className = 'where';
      where.textContent = [f.line ? 'line ' + f.line : '', f.element_id ? 'element ' + f.element_id : '',
        'rule ' + f.rule].filter(Boolean).join(' · ');
      item.appendChild(where);
      if (f.element_id) {
        item.setAttribute('data-element-id', f.element_id);
      }
      findingsList.appendChild(item);
    });
  }

  function showFindings(findings) {
    helpers.showFindings(modeler, findings);
    listFindings(findings);
  }

  function saved(body) {
    dirty = false;
    var first = body.definitions[0];
    var versions = body.definitions.map(function (d) { return d.key + ' v' + d.version; }).join(', ');
    setState(body.created ? 'Saved as ' + versions + '.' : 'No changes: this is ' + versions + '.', false);
    showFindings(body.findings || []);
    if (first) {
      var heading = document.getElementById('modeler-version');
      if (heading) { heading.textContent = 'v' + first.version; }
      var link = document.getElementById('version-link');
      if (link) { link.href = first.url; }
      window.history.replaceState(null, '', first.modeler_url);
    }
  }

  function save() {
    saveButton.disabled = true;
    setState('Saving…', dirty);
    modeler.saveXML({ format: true }).then(function (result) {
      return fetch(container.getAttribute('data-save-url'), {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf, Accept: 'application/json' },
        body: JSON.stringify({ xml: result.xml, name: fileName.value })
      });
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          throw new Error(body.detail || ('the server answered HTTP ' + response.status));
        }
        saved(body);
      });
    }).catch(function (error) {
      setState('Not saved: ' + error.message, true);
    }).then(function () {
      saveButton.disabled = false;
    });
  }

  modeler.on('commandStack.changed', function () {
    dirty = true;
    setState('Unsaved changes', true);
  });
  window.addEventListener('beforeunload', function (event) {
    if (dirty) {
      event.preventDefault();
      event.returnValue = '';
    }
  });
  saveButton.addEventListener('click', save);

  var url = container.getAttribute('data-xml-url');
  (url ? helpers.fetchXml(url) : Promise.resolve(blankDiagram()))
    .then(function (xml) { return modeler.importXML(xml); })
    .then(function () {
      modeler.get('canvas').zoom('fit-viewport', 'auto');
      showFindings(helpers.parseJSON(container.getAttribute('data-findings'), []));
      container.setAttribute('data-shapes', String(helpers.shapeCount(modeler)));
      container.setAttribute('data-rendered', 'true');
      saveButton.disabled = false;
      setState(url ? 'No unsaved changes' : 'New diagram: not saved yet', !url);
      dirty = !url;
    })
    .catch(function (error) {
      setState('The diagram cannot be opened: ' + error.message, false);
      container.setAttribute('data-rendered', 'error');
    });
})();
