// The page's client: socket.io-client 4.x, served from this app (no CDN).
(function () {
  var result = document.getElementById("result");
  var status = document.getElementById("status");
  var socket = io("/pingpong", { path: "/socketio" });

  function show(line) {
    var row = document.createElement("div");
    row.textContent = line;
    result.appendChild(row);
  }

  socket.on("connect", function () { status.textContent = "connected"; });
  socket.on("disconnect", function () { status.textContent = "disconnected"; });
  socket.on("pong", function (data) { show(data.sound); });
  socket.on("error", function (name, message) {
    if (name === "method_access_denied") { show("denied: " + message); }
    else { show("error: " + name + " " + JSON.stringify(message)); }
  });

  document.querySelectorAll(".ping").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      socket.emit("ping", { type: link.dataset.attack });
    });
  });
})();
