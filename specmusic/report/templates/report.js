(function () {
  "use strict";
  // One player at a time: starting one pauses the others.
  document.addEventListener("play", function (e) {
    var all = document.getElementsByTagName("audio");
    for (var k = 0; k < all.length; k++) { if (all[k] !== e.target) { all[k].pause(); } }
  }, true);
  var map = document.getElementById("map");
  if (!map) { return; }
  // The embed map: hover names the track, click plays it in #map-player.
  var tracks = JSON.parse(document.getElementById("map-data").textContent);
  var tip = document.getElementById("map-tip");
  var player = document.getElementById("map-player");
  var now = document.getElementById("map-now");
  var box = map.parentNode;
  function track(e) {
    var i = e.target.getAttribute && e.target.getAttribute("data-i");
    return i === null || i === undefined ? null : tracks[+i];
  }
  map.addEventListener("mouseover", function (e) {
    var t = track(e);
    if (!t) { return; }
    tip.textContent = t.n + (t.l ? "  [" + t.l + "]" : "") + "  · cluster " + t.c;
    var r = box.getBoundingClientRect();
    tip.style.left = (e.clientX - r.left + 12) + "px";
    tip.style.top = (e.clientY - r.top + 12) + "px";
    tip.hidden = false;
  });
  map.addEventListener("mouseout", function (e) { if (track(e)) { tip.hidden = true; } });
  map.addEventListener("click", function (e) {
    var t = track(e);
    if (!t) { return; }
    var listed = document.getElementById("track-" + t.i);  // this page's player: its src may be embedded
    var src = listed ? listed.getAttribute("src") : t.s;
    var on = map.querySelector("circle.on");
    if (on) { on.classList.remove("on"); }
    e.target.classList.add("on");
    if (!src) { now.textContent = t.n + ": audio not found"; return; }
    now.textContent = t.n;
    player.src = src;
    var p = player.play();
    if (p && p.catch) { p.catch(function () {}); }
  });
})();
