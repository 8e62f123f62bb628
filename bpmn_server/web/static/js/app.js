/* Small page behaviour without inline scripts (the CSP allows only files of this site):
   move keyboard focus to a form's error summary so screen readers announce it. */
(function () {
  'use strict';
  var summary = document.getElementById('form-errors');
  if (summary) { summary.focus(); }
})();
