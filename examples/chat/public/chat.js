// The page's client: socket.io-client 4.x, served from this app (no CDN).
(function () {
  var socket = io("/chat", { path: "/socketio" });
  window.chatSocket = socket;  // to play with from the browser's console
  var messages = document.getElementById("messages");
  var status = document.getElementById("status");
  var roomLabel = document.getElementById("room");
  var membersLabel = document.getElementById("members");
  var currentRoom = null;

  function show(text, className) {
    var row = document.createElement("div");
    row.textContent = text;
    if (className) { row.className = className; }
    messages.appendChild(row);
    messages.scrollTop = messages.scrollHeight;
  }

  function showRoom(room) {
    // the room this connection is really subscribed to, or none
    currentRoom = room;
    if (room === null) { members = {}; membersLabel.textContent = "nobody"; }
    roomLabel.textContent = room === null ? "none" : room;
    document.querySelectorAll(".room").forEach(function (button) {
      button.classList.toggle("current", button.dataset.room === room);
    });
  }

  function join(room) {
    // leave every room of this connection, then subscribe to the new one
    socket.emit("unsubscribe", function () {
      showRoom(null);
      socket.emit("subscribe", "room", room, function (channel) {
        if (channel === false) {  // the error event says why
          show("not in any room: pick another one", "error");
          return;
        }
        showRoom(room);
        show("joined " + room);
      });
    });
  }

  socket.on("connect", function () {
    if (socket.recovered) {
      // connection state recovery: same room, and what was said meanwhile
      // arrives now, in order
      status.textContent = "connected (recovered)";
      show("connection recovered", "presence");
      return;
    }
    status.textContent = "connected";
    // a new connection has no subscriptions: join the room again
    if (currentRoom !== null) { join(currentRoom); }
  });
  socket.on("disconnect", function () { status.textContent = "disconnected"; });
  // (message, channel, mark): mark.history for what was said before we came
  // (with connection state recovery, a live one's last argument is its offset)
  socket.on("pubblication", function (message, channel, mark) {
    show("[" + message.room + "] " + message.nickname + ": " + message.text,
         mark && mark.history ? "history" : null);
  });

  // who is in the room: {key: {user, metas: [{sid, nickname}]}}
  var members = {};
  function showMembers() {
    var names = [];
    Object.keys(members).forEach(function (key) {
      members[key].metas.forEach(function (meta) { names.push(meta.nickname); });
    });
    membersLabel.textContent = names.length ? names.sort().join(", ") : "nobody";
  }
  socket.on("presence_state", function (state, channel) {
    if (channel !== "room-" + currentRoom) { return; }
    members = state;
    showMembers();
  });
  socket.on("presence_diff", function (diff, channel) {
    if (channel !== "room-" + currentRoom) { return; }
    Object.keys(diff.leaves).forEach(function (key) {
      diff.leaves[key].metas.forEach(function (left) {
        show(left.nickname + " left", "presence");
        if (!members[key]) { return; }
        members[key].metas = members[key].metas.filter(function (meta) {
          return meta.sid !== left.sid;
        });
        if (!members[key].metas.length) { delete members[key]; }
      });
    });
    Object.keys(diff.joins).forEach(function (key) {
      var entry = members[key] || (members[key] = { user: diff.joins[key].user, metas: [] });
      diff.joins[key].metas.forEach(function (joined) {
        if (entry.metas.some(function (meta) { return meta.sid === joined.sid; })) { return; }
        entry.metas.push(joined);
        show(joined.nickname + " joined", "presence");
      });
    });
    showMembers();
  });
  socket.on("error", function (name, message) {
    show(name + ": " + (typeof message === "string" ? message : JSON.stringify(message)),
         "error");
  });

  document.getElementById("nickname-form").addEventListener("submit", function (event) {
    event.preventDefault();
    socket.emit("nickname", document.getElementById("nickname").value, function (name) {
      if (name) { show("you are " + name); }
    });
  });
  document.querySelectorAll(".room").forEach(function (button) {
    button.addEventListener("click", function () { join(button.dataset.room); });
  });
  document.getElementById("room-form").addEventListener("submit", function (event) {
    event.preventDefault();
    join(document.getElementById("room-name").value);
  });
  document.getElementById("say-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var input = document.getElementById("text");
    if (!currentRoom) { show("join a room first", "error"); return; }
    socket.emit("say", currentRoom, input.value);
    input.value = "";
  });
})();
