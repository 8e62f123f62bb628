/* Diagrams on bpmn_server pages: a read-only bpmn-js viewer for every [data-bpmn-viewer] element,
   with state markers (active/completed/failed) and validation findings drawn on the elements.
   Shared with the modeler through window.BpmnServer. */
(function () {
  'use strict';

  function parseJSON(text, fallback) {
    try { return text ? JSON.parse(text) : fallback; } catch (e) { return fallback; }
  }

  var drawnFindings = new WeakMap();

  /* Mark each element that has findings and put a count badge on it (its messages as the tooltip). */
  function showFindings(diagram, findings) {
    var canvas = diagram.get('canvas');
    var overlays = diagram.get('overlays');
    var registry = diagram.get('elementRegistry');
    (drawnFindings.get(diagram) || []).forEach(function (mark) { canvas.removeMarker(mark[0], mark[1]); });
    overlays.remove({ type: 'finding' });
    var byElement = {};
    (findings || []).forEach(function (f) {
      if (f.element_id && registry.get(f.element_id)) {
        (byElement[f.element_id] = byElement[f.element_id] || []).push(f);
      }
    });
    var marks = [];
    Object.keys(byElement).forEach(function (id) {
      var list = byElement[id];
      var isError = list.some(function (f) { return f.severity === 'error'; });
      var marker = isError ? 'marker-finding-error' : 'marker-finding-warning';
      canvas.addMarker(id, marker);
      marks.push([id, marker]);
      var badge = document.createElement('div');
      badge.className = 'finding-overlay' + (isError ? '' : ' warning');
      badge.textContent = String(list.length);
      badge.title = list.map(function (f) { return f.severity + ': ' + f.message; }).join('\n');
      badge.setAttribute('data-finding-element', id);
      overlays.add(id, 'finding', { position: { top: -10, right: 10 }, html: badge });
    });
    drawnFindings.set(diagram, marks);
    return Object.keys(byElement).length;
  }

  /* Colour elements by state: {"element_id": "active" | "completed" | "failed"}. */
  function showMarkers(diagram, markers) {
    var canvas = diagram.get('canvas');
    var registry = diagram.get('elementRegistry');
    Object.keys(markers || {}).forEach(function (id) {
      if (registry.get(id)) { canvas.addMarker(id, 'marker-' + markers[id]); }
    });
  }

  function setStatus(container, text) {
    var status = container.querySelector('.diagram-status');
    if (!status) {
      status = document.createElement('p');
      status.className = 'diagram-status';
      container.appendChild(status);
    }
    status.textContent = text;
    status.hidden = !text;
  }

  function fetchXml(url) {
    return fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/xml' } }).then(function (r) {
      if (!r.ok) { throw new Error('could not load the diagram (HTTP ' + r.status + ')'); }
      return r.text();
    });
  }

  function shapeCount(diagram) {
    return diagram.get('elementRegistry').filter(function (e) { return e.type !== 'label' && !e.waypoints; }).length;
  }

  function showViewer(container) {
    var viewer = new window.BpmnJS({ container: container });
    return fetchXml(container.getAttribute('data-xml-url'))
      .then(function (xml) { return viewer.importXML(xml); })
      .then(function () {
        var canvas = viewer.get('canvas');
        canvas.zoom('fit-viewport', 'auto');
        showMarkers(viewer, parseJSON(container.getAttribute('data-markers'), {}));
        showFindings(viewer, parseJSON(container.getAttribute('data-findings'), []));
        var focus = container.getAttribute('data-focus');
        if (focus && viewer.get('elementRegistry').get(focus)) {
          canvas.scrollToElement(focus);
        }
        setStatus(container, '');
        container.setAttribute('data-shapes', String(shapeCount(viewer)));
        container.setAttribute('data-rendered', 'true');
      })
      .catch(function (error) {
        setStatus(container, 'The diagram cannot be shown: ' + error.message);
        container.setAttribute('data-rendered', 'error');
      });
  }

  window.BpmnServer = {
    parseJSON: parseJSON,
    showFindings: showFindings,
    showMarkers: showMarkers,
    fetchXml: fetchXml,
    shapeCount: shapeCount
  };

  if (window.BpmnJS) {
    Array.prototype.forEach.call(document.querySelectorAll('[data-bpmn-viewer]'), showViewer);
  }
})();
