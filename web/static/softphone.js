"use strict";
// The desk's browser softphone: JsSIP (vendor/jssip.min.js) registers over Asterisk's WebSocket
// transport with credentials the desk hands this session (POST /desk/api/softphone; a new
// request replaces them, so this browser is the agent's one softphone). A call rings here with
// Answer/Decline; the desk's own controls (hang up, hold, transfer) act on the call through the
// server, Mute acts on this browser's microphone. Remote audio plays in #phone-audio.
// On by itself for an agent with no phone on file; otherwise the agent switches it on (the
// choice is kept in this browser). While it is registered, going Available rings it, not the
// desk phone. Its texts are t() of i18n.js, in the agent's language.
(() => {
  const KEY = "centrala.softphone";
  const phone = {on: false, ua: null, session: null, credentials: null, muted: false, refused: 0, retry: null};
  let generation = 0;  // a start overtaken by a stop (or a newer start) gives up
  window.__softphone = phone;  // read by the browser tests (registration, call, getStats)
  const show = (text) => { $("phone-state").textContent = text; };

  function ringing(session) {
    phone.session = session;
    const who = session.remote_identity;
    $("phone-from").textContent = (who.display_name ? `${who.display_name} ` : "") + `<${who.uri.user}>`;
    $("phone-ring").hidden = false;
    show(t("softphone.ringing"));
    session.on("peerconnection", (e) => {
      e.peerconnection.addEventListener("track", (track) => { $("phone-audio").srcObject = track.streams[0]; });
    });
    session.on("confirmed", () => { $("phone-ring").hidden = true; $("btn-mute").disabled = false; show(t("softphone.in_call")); });
    const over = (e) => {
      if (phone.session !== session) return;
      phone.session = null; phone.muted = false;
      $("phone-ring").hidden = true; $("btn-mute").disabled = true;
      $("btn-mute").textContent = t("softphone.mute"); $("btn-mute").setAttribute("aria-pressed", "false");
      $("phone-audio").srcObject = null;
      show(t(phone.ua && phone.ua.isRegistered() ? "softphone.registered" : "softphone.not_registered"));
      phone.lastEnd = e && e.cause;
    };
    session.on("ended", over);
    session.on("failed", over);
  }

  function setOn(on) {
    const b = $("btn-phone");
    b.textContent = t(on ? "softphone.stop" : "softphone.use");
    b.setAttribute("aria-pressed", String(on));
  }

  async function stop() {
    generation += 1;
    phone.on = false;
    clearTimeout(phone.retry);
    if (phone.session) phone.session.terminate();
    if (phone.ua) { phone.ua.removeAllListeners(); phone.ua.stop(); phone.ua = null; }
    phone.credentials = null;
    setOn(false);
    show(t("softphone.off"));
    try { await api("DELETE", "/desk/api/softphone"); } catch (e) { /* gone with Asterisk */ }
  }

  // JsSIP (250 kB) is fetched only when the softphone is switched on.
  let jssip = null;
  function loadJsSIP() {
    jssip = jssip || new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/static/vendor/jssip.min.js";
      script.onload = () => resolve(window.JsSIP);
      script.onerror = () => { jssip = null; reject(new Error(t("softphone.not_loaded"))); };
      document.head.append(script);
    });
    return jssip;
  }

  async function start() {
    const mine = ++generation;
    phone.on = true;
    clearTimeout(phone.retry);
    setOn(true);
    try { await loadJsSIP(); } catch (e) { show(t("softphone.off_because", {reason: e.message})); return; }
    let credentials;
    try { credentials = await api("POST", "/desk/api/softphone"); }
    catch (e) { show(t("softphone.off_because", {reason: e.message})); return; }
    if (mine !== generation) return;
    if (phone.ua) { phone.ua.removeAllListeners(); phone.ua.stop(); }
    phone.credentials = credentials;
    const ua = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(credentials.ws_url)],
      uri: credentials.uri, authorization_user: credentials.username,
      password: credentials.password, realm: credentials.realm,
      register_expires: credentials.register_expires, session_timers: false,
      user_agent: "Centrala desk",
    });
    phone.ua = ua;
    ua.on("registered", () => { phone.refused = 0; show(t("softphone.registered")); });
    ua.on("unregistered", () => show(t("softphone.not_registered")));
    ua.on("registrationFailed", (e) => {
      // Refused: Asterisk restarted (it forgot the endpoint) or another browser took over.
      // New credentials, a few times, further apart each time.
      show(t("softphone.not_registered_because", {cause: e.cause}));
      phone.refused += 1;
      if (phone.refused <= 5) phone.retry = setTimeout(start, 2000 * phone.refused);
    });
    ua.on("newRTCSession", (e) => {
      if (e.originator !== "remote") return;
      if (phone.session) { e.session.terminate({status_code: 486}); return; }  // busy here
      ringing(e.session);
    });
    ua.start();
  }

  $("btn-answer").onclick = () => {
    if (!phone.session) return;
    phone.session.answer({mediaConstraints: {audio: true, video: false}, pcConfig: {iceServers: []}});
    show(t("softphone.answering"));
  };
  $("btn-decline").onclick = () => { if (phone.session) phone.session.terminate({status_code: 603}); };
  $("btn-mute").onclick = () => {
    if (!phone.session) return;
    phone.muted = !phone.muted;
    if (phone.muted) phone.session.mute({audio: true}); else phone.session.unmute({audio: true});
    $("btn-mute").textContent = t(phone.muted ? "softphone.unmute" : "softphone.mute");
    $("btn-mute").setAttribute("aria-pressed", String(phone.muted));
  };
  $("btn-phone").onclick = () => {
    const on = !phone.on;
    localStorage.setItem(KEY, on ? "on" : "off");
    if (on) start(); else stop();
  };
  // Leaving the page un-registers at once: calls stop ringing here.
  window.addEventListener("pagehide", () => { if (phone.ua) phone.ua.stop(); });
  const wanted = localStorage.getItem(KEY) || $("softphone").dataset.default;
  if (wanted === "on") start();
})();
