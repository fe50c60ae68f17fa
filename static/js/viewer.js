// Brings the cited passage into view inside the page-text panel, which scrolls on its own beside the image.
(function () {
  "use strict";
  var mark = document.getElementById("cited");
  var panel = document.querySelector(".page-text");
  if (!mark || !panel) { return; }
  var offset = mark.getBoundingClientRect().top - panel.getBoundingClientRect().top;
  panel.scrollTop += offset - panel.clientHeight / 4;
}());
