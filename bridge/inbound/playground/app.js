// The playground: talks to the bridge as a platform does (POST v1/chat/completions, streamed,
// the whole conversation resent each turn) and asks for the trace (X-Bridge-Trace: on), whose
// SSE comment lines draw each turn's timeline. Nothing is loaded from anywhere but the bridge.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  // "/" or "/agents/<name>/": the page under an agent's path talks to that agent
  const base = location.pathname.replace(/playground\/?$/, "");
  const CHAT = base + "v1/chat/completions";
  const MODELS = base + "v1/models";
  const TOKEN_KEY = "voice-llm-bridge token " + base;  // sessionStorage: this tab only
  const SENTENCE = /^[\s\S]*?[.!?;:。！？；…](\s+|$)/;

  const history = [];  // the conversation, as a platform keeps it
  let current = null;  // the turn being answered
  let waiting = null;  // the turn that waits for a token

  const Recognition = window.SpeechRecognition || window.webkitSpeechRecognition;
  const synthesis = "speechSynthesis" in window ? window.speechSynthesis : null;

  function status(text) {
    $("status").textContent = text;
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra);
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    return headers;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      return (body.error && body.error.message) || body.Text || response.statusText;
    } catch (_) {
      return response.statusText || "HTTP " + response.status;
    }
  }

  // -- the token ------------------------------------------------------------------------------

  async function probe() {
    // GET v1/models tells whether the token (or none) is accepted, before anything is said
    let response;
    try {
      response = await fetch(MODELS, {headers: authHeaders({})});
    } catch (_) {
      status("The bridge does not answer.");
      return false;
    }
    if (response.status === 401) {
      askToken(sessionStorage.getItem(TOKEN_KEY) ? "That token was not accepted." : "");
      sessionStorage.removeItem(TOKEN_KEY);
      return false;
    }
    if (!response.ok) {
      status(await errorMessage(response));
      return false;
    }
    $("token-form").hidden = true;
    return true;
  }

  function askToken(problem) {
    $("token-form").hidden = false;
    $("token-error").textContent = problem;
    $("token").focus();
  }

  async function useToken(event) {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    if (await probe() && waiting) {
      const turn = waiting;
      waiting = null;
      answer(turn);
    }
  }

  // -- speech out ------------------------------------------------------------------------------

  class Speaker {
    constructor() {
      this.held = "";
    }
    get on() {
      return synthesis !== null && $("speak-answers").checked;
    }
    feed(text) {
      if (!this.on) return;
      this.held += text;
      let match;
      while ((match = SENTENCE.exec(this.held))) {
        this.say(match[0]);
        this.held = this.held.slice(match[0].length);
      }
    }
    finish() {
      if (this.on) this.say(this.held);
      this.held = "";
    }
    say(text) {
      if (text.trim()) synthesis.speak(new SpeechSynthesisUtterance(text.trim()));
    }
    cancel() {
      this.held = "";
      if (synthesis) synthesis.cancel();
    }
  }
  const speaker = new Speaker();

  // -- one turn: the caller's words, the answer, the timeline ---------------------------------

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  class Turn {
    constructor(text) {
      this.text = "";
      this.rows = [];
      this.started = 0;
      this.lastAt = null;
      this.over = false;
      const item = element("li", "turn");
      const caller = element("div", "caller");
      caller.append(element("span", "who", "Caller"), element("p", "said", text));
      const reply = element("div", "reply");
      const answer = element("section", "answer");
      answer.setAttribute("aria-label", "Answer");
      this.answer = element("p", "said pending", "…");
      answer.append(element("span", "who", "Agent"), this.answer);
      this.timeline = element("ol", "timeline");
      this.timeline.setAttribute("aria-label", "Timeline");
      reply.append(answer, this.timeline);
      item.append(caller, reply);
      $("turns").append(item);
      item.scrollIntoView({block: "end"});
    }

    now() {
      return performance.now() - this.started;
    }

    mark(label, detail, kind, at, span) {
      const row = element("li", "row " + (kind || ""));
      const ms = element("span", "ms", "+" + Math.round(at) + " ms");
      const what = element("span", "what", label);
      const bar = element("span", "bar");
      const track = element("span", "track");
      track.append(bar);
      row.append(ms, what);
      if (detail) row.append(element("span", "detail", detail));
      row.append(track);
      this.timeline.append(row);
      this.rows.push({at, span: span || 0, bar});
      this.draw();
    }

    draw() {
      // every row on one scale: the latest moment so far is the track's right end
      const end = Math.max(1, ...this.rows.map((r) => r.at));
      for (const {at, span, bar} of this.rows) {
        const from = Math.max(0, at - span);
        const left = 100 * from / end;
        // a moment is a dot, kept inside the track; a tool is a bar as long as it ran
        bar.style.left = span ? left + "%" : "calc(" + left + "% - " + (0.04 * left) + "px)";
        bar.style.width = span ? Math.max(1, 100 * (at - from) / end) + "%" : "";
      }
    }

    append(text) {
      if (this.over) return;
      if (!this.text) this.answer.textContent = "";
      this.answer.classList.remove("pending");
      this.text += text;
      this.answer.textContent = this.text;
      this.lastAt = this.now();
      speaker.feed(text);
    }

    trace(event) {
      if (this.over) return;
      const at = this.now();
      if (event.event === "agent") {
        $("agent-name").textContent = event.name;
      } else if (event.event === "first_token") {
        this.mark("first token", "", "token", at);
      } else if (event.event === "filler") {
        this.mark("filler", "“" + event.text + "”", "filler", at);
      } else if (event.event === "tool") {
        const ok = event.outcome === "ok";
        this.mark("tool " + event.name, event.ms + " ms · " + (ok ? "ok" : "error: " + event.outcome),
                  ok ? "tool ok" : "tool error", at, event.ms);
      }
    }

    end(how, detail) {
      if (this.over) return;
      this.over = true;
      if (this.lastAt !== null) this.mark("last token", "", "token", this.lastAt);
      if (how === "barged") this.mark("barged in", "the bridge cancels the upstream", "barge", this.now());
      if (how === "error") this.mark("error", detail, "error", this.now());
      if (!this.text) {
        this.answer.textContent = how === "error" ? detail : "(nothing said)";
        this.answer.classList.add(how === "error" ? "failed" : "pending");
      }
      if (how === "done") speaker.finish();
      if (this.text) history.push({role: "assistant", content: this.text});
    }
  }

  // -- talking to the bridge -----------------------------------------------------------------

  function busy(turn) {
    current = turn;
    $("barge").disabled = turn === null;
  }

  function handleLine(turn, line) {
    if (line.startsWith(": trace ")) {
      turn.trace(JSON.parse(line.slice(8)));
    } else if (line.startsWith("data:")) {
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message || "the answer failed");
      const choice = chunk.choices && chunk.choices[0];
      if (choice && choice.delta && choice.delta.content) turn.append(choice.delta.content);
    }
  }

  async function read(turn, response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        handleLine(turn, buffer.slice(0, newline).replace(/\r$/, ""));
        buffer = buffer.slice(newline + 1);
      }
    }
  }

  async function answer(turn) {
    const controller = new AbortController();
    turn.controller = controller;
    busy(turn);
    turn.started = performance.now();
    turn.mark("request sent", "", "sent", 0);
    try {
      const response = await fetch(CHAT, {
        method: "POST",
        headers: authHeaders({"Content-Type": "application/json", "X-Bridge-Trace": "on"}),
        body: JSON.stringify({stream: true, messages: history}),
        signal: controller.signal,
      });
      if (response.status === 401) {
        turn.timeline.lastChild.remove();
        turn.rows.pop();
        waiting = turn;
        sessionStorage.removeItem(TOKEN_KEY);
        askToken("A token is needed to talk to this agent.");
        return;
      }
      if (!response.ok) throw new Error(await errorMessage(response));
      await read(turn, response);
      turn.end("done");
    } catch (error) {
      turn.end(controller.signal.aborted ? "barged" : "error", error.message);
    } finally {
      if (current === turn) busy(null);
    }
  }

  function bargeIn() {
    // what was said so far stays in the history (the caller heard it), before anything said next
    speaker.cancel();
    if (current === null) return;
    current.end("barged");
    current.controller.abort();
    busy(null);
  }

  function send(text) {
    text = text.trim();
    if (!text) return;
    bargeIn();  // the caller speaks over the answer
    history.push({role: "user", content: text});
    $("message").value = "";
    status("");
    answer(new Turn(text));
  }

  // -- speech in -------------------------------------------------------------------------------

  function listen() {
    bargeIn();
    const recognition = new Recognition();
    recognition.lang = navigator.language || "en-US";
    recognition.interimResults = true;
    recognition.onspeechstart = bargeIn;
    recognition.onresult = (event) => {
      const results = Array.from(event.results);
      $("message").value = results.map((r) => r[0].transcript).join("");
      if (results[results.length - 1].isFinal) send($("message").value);
    };
    recognition.onerror = (event) => status("Speech recognition: " + event.error);
    recognition.onend = () => { $("mic").disabled = false; };
    $("mic").disabled = true;
    status("Listening…");
    recognition.start();
  }

  // -- wiring ----------------------------------------------------------------------------------

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send($("message").value);
  });
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send($("message").value);
    }
  });
  $("barge").addEventListener("click", bargeIn);
  $("token-form").addEventListener("submit", useToken);
  $("reset").addEventListener("click", () => {
    bargeIn();
    history.length = 0;
    waiting = null;
    $("turns").replaceChildren();
    status("");
  });
  if (Recognition) {
    $("mic").hidden = false;
    $("mic").addEventListener("click", listen);
  }
  if (synthesis) $("speak-toggle").hidden = false;
  probe();
})();
