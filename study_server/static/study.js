// The participant page: fetch the current trial, draw it, time the answer, post it.
// All trial state lives on the server; a reload resumes where the participant was.
(function () {
  "use strict";
  var app = document.getElementById("app");
  var token = app.dataset.token;
  var api = app.dataset.api;
  var showFeedback = app.dataset.feedback === "true";
  var showBreaks = app.dataset.breaks === "true";
  var askConfidence = app.dataset.confidence === "true";
  var minWidth = parseInt(app.dataset.minWidth || "0", 10);
  var maxTrialMs = 1000 * parseFloat(app.dataset.maxTrialSeconds || "0");
  var limitTimer = null;  // shows the "please answer" reminder once the time limit has passed
  var screens = ["instructions", "trial", "practice-done", "break", "done", "smallscreen"];
  var pending = null;     // {side, rt} while the confidence scale is open
  var answeredAt = null;  // the participant's clock (Date.now()) at the answer
  var current = null;     // the trial being shown
  var shownAt = null;     // performance.now() when its images were drawn
  var busy = false;
  var lastBlock = null;
  var preloaded = {};

  function show(id) {
    screens.forEach(function (s) { document.getElementById(s).hidden = (s !== id); });
  }

  function fail(message) {
    var el = document.getElementById("error");
    el.textContent = message;
    el.hidden = false;
  }

  function request(method, path, body) {
    var opts = { method: method, headers: { "Authorization": "Bearer " + token } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(api + path, opts).then(function (resp) {
      if (resp.status === 204) { return null; }
      return resp.json().then(function (data) {
        if (!resp.ok) { throw new Error((data.error && data.error.message) || ("HTTP " + resp.status)); }
        return data;
      });
    });
  }

  function sendEvent(type, data) {
    request("POST", "/events", { type: type, trial_id: current ? current.id : null, data: data || {} })
      .catch(function () { /* events are best effort */ });
  }

  function loadImage(url) {
    if (!preloaded[url]) {
      preloaded[url] = new Promise(function (resolve, reject) {
        var img = new Image();
        img.onload = function () { (img.decode ? img.decode() : Promise.resolve()).then(function () { resolve(img); }, function () { resolve(img); }); };
        img.onerror = function () { reject(new Error("could not load " + url)); };
        img.src = url;
      });
    }
    return preloaded[url];
  }

  function imagesOf(trial) {
    var urls = [];
    trial.context.forEach(function (g) { urls = urls.concat(g.images); });
    trial.options.forEach(function (o) { if (o.image) { urls.push(o.image); } });
    return urls;
  }

  function makeImg(url, alt) {
    var img = document.createElement("img");
    img.src = url;
    img.alt = alt;
    img.draggable = false;
    return img;
  }

  function render(trial) {
    document.getElementById("prompt").textContent = trial.prompt;
    var kind = trial.kind === "practice" ? "Practice" : "";
    document.getElementById("kind").textContent = kind;
    var ctx = document.getElementById("context");
    ctx.textContent = "";
    trial.context.forEach(function (group) {
      var fig = document.createElement("figure");
      var cap = document.createElement("figcaption");
      cap.textContent = group.label;
      fig.appendChild(cap);
      var row = document.createElement("div");
      row.className = "row";
      group.images.forEach(function (url, i) { row.appendChild(makeImg(url, group.label + " example " + (i + 1))); });
      fig.appendChild(row);
      ctx.appendChild(fig);
    });
    trial.options.forEach(function (opt, side) {
      var button = document.getElementById("opt" + side);
      var content = button.querySelector(".content");
      content.textContent = "";
      var label = side === 0 ? "Left option" : "Right option";
      if (opt.image) {
        content.appendChild(makeImg(opt.image, label));
      } else {
        content.textContent = opt.text;
      }
      button.setAttribute("aria-label", label + " (key " + (side === 0 ? "F" : "J") + ")" + (opt.text ? ": " + opt.text : ""));
      button.disabled = true;  // enabled once drawn, when the RT clock starts
      button.classList.remove("chosen");
    });
    var bar = document.getElementById("bar");
    var done = trial.position - 1;
    bar.style.width = (100 * done / trial.total).toFixed(1) + "%";
    bar.parentNode.setAttribute("aria-valuenow", String(done));
    bar.parentNode.setAttribute("aria-valuemax", String(trial.total));
    document.getElementById("feedback").textContent = "";
  }

  var held = null;  // a trial received while a break screen is up, shown on "continue"

  function failLoad(err) { busy = false; fail("Could not load the next question: " + err.message + ". Please reload the page."); }

  // Fetch the current trial (first trial, and after a reload); later trials come with the
  // reply to the previous answer.
  function next() {
    busy = true;
    return request("GET", "/trial").then(present).catch(failLoad);
  }

  // Continue after a break screen: show the trial that came with the last answer.
  function resume() {
    if (!held) { return next(); }
    var data = held;
    held = null;
    busy = true;
    return Promise.resolve().then(function () { return present(data); }).catch(failLoad);
  }

  function present(data) {
    if (data.finished) { finish(data); return; }
    var trial = data.trial;
    if (lastBlock === 0 && trial.kind !== "practice") {
      lastBlock = -1;
      held = data;
      show("practice-done");
      document.getElementById("practice-continue").focus();
      busy = false;
      return;
    }
    if (showBreaks && lastBlock !== null && trial.kind !== "practice" && lastBlock > 0 && trial.block !== lastBlock) {
      lastBlock = trial.block;
      held = data;
      show("break");
      document.getElementById("continue").focus();
      busy = false;
      return;
    }
    lastBlock = trial.block;
    return Promise.all(imagesOf(trial).map(loadImage)).then(function () {
      current = trial;
      render(trial);
      show("trial");
      // RT starts when the trial's images have been drawn
      requestAnimationFrame(function () {
        requestAnimationFrame(function () {
          shownAt = performance.now();
          if (maxTrialMs > 0) {
            clearTimeout(limitTimer);
            limitTimer = setTimeout(function () {
              if (current === trial && shownAt !== null && !pending) {
                var fb = document.getElementById("feedback");
                fb.textContent = "Time is up for this question: please answer now.";
                fb.className = "feedback late";
              }
            }, maxTrialMs);
          }
          document.getElementById("opt0").disabled = false;
          document.getElementById("opt1").disabled = false;
          busy = false;
        });
      });
      (data.preload || []).forEach(function (url) { loadImage(url).catch(function () {}); });
    });
  }

  function answer(side) {
    if (busy || !current || shownAt === null || pending) { return; }
    var rt = performance.now() - shownAt;
    clearTimeout(limitTimer);
    answeredAt = Date.now();
    document.getElementById("opt" + side).classList.add("chosen");
    document.getElementById("opt0").disabled = true;
    document.getElementById("opt1").disabled = true;
    if (askConfidence) {
      pending = { side: side, rt: rt };
      var box = document.getElementById("confidence");
      box.hidden = false;
      box.querySelector(".conf").focus();
      return;
    }
    submit(side, rt, null);
  }

  function rate(value) {
    if (!pending || busy) { return; }
    var p = pending;
    pending = null;
    document.getElementById("confidence").hidden = true;
    submit(p.side, p.rt, value);
  }

  function submit(side, rt, confidence) {
    busy = true;
    var trial = current;
    var body = { choice: side, rt_ms: Math.round(rt * 10) / 10, client_time: answeredAt };
    if (confidence !== null) { body.confidence = confidence; }
    // ?next=1: the reply carries the next trial (or the finished reply), one round trip per trial
    request("POST", "/trials/" + trial.id + "/response?next=1", body)
      .then(function (data) {
        shownAt = null;
        var go = function () {
          if (!data.next) { return next(); }
          return Promise.resolve().then(function () { return present(data.next); }).catch(failLoad);
        };
        if (data.feedback && showFeedback) {
          var fb = document.getElementById("feedback");
          fb.textContent = data.feedback.correct ? "Correct!" : "Not quite: the other option was right.";
          fb.className = "feedback " + (data.feedback.correct ? "good" : "bad");
          setTimeout(go, 900);
        } else {
          go();
        }
      })
      .catch(function (err) { busy = false; fail("Your answer was not saved: " + err.message + ". Please reload the page."); });
  }

  // Called only after the server answered that no trial is left, i.e. after the last
  // response was committed: only then does the participant get the way back to the platform.
  function finish(data) {
    current = null;
    show("done");
    if (data.completion_code) {
      document.getElementById("completion-code").textContent = data.completion_code;
      document.getElementById("code-line").hidden = false;
    }
    if (data.completion_form) {
      var form = document.getElementById("mturk-form");
      form.action = data.completion_form.action;
      Object.keys(data.completion_form.fields).forEach(function (name) {
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.value = data.completion_form.fields[name];
        form.appendChild(input);
      });
      form.hidden = false;
      document.getElementById("mturk-submit").focus();
    } else if (data.completion_url) {
      var link = document.getElementById("completion-link");
      link.href = data.completion_url;
      document.getElementById("completion").hidden = false;
      link.focus();
    }
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.repeat || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (document.getElementById("trial").hidden) { return; }
    var key = ev.key.toLowerCase();
    if (pending) {
      if (key >= "1" && key <= "7") { ev.preventDefault(); rate(parseInt(key, 10)); }
      return;
    }
    if (key === "f") { ev.preventDefault(); answer(0); }
    if (key === "j") { ev.preventDefault(); answer(1); }
  });
  document.getElementById("opt0").addEventListener("click", function () { answer(0); });
  document.getElementById("opt1").addEventListener("click", function () { answer(1); });
  document.getElementById("begin").addEventListener("click", function () { next(); });
  document.getElementById("continue").addEventListener("click", function () { lastBlock = -1; resume(); });
  document.getElementById("practice-continue").addEventListener("click", function () { resume(); });
  Array.prototype.forEach.call(document.querySelectorAll("#confidence .conf"), function (button) {
    button.addEventListener("click", function () { rate(parseInt(button.dataset.value, 10)); });
  });
  window.addEventListener("blur", function () { if (current) { sendEvent("blur"); } });
  window.addEventListener("focus", function () { if (current) { sendEvent("focus"); } });
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { sendEvent("resize", { w: window.innerWidth, h: window.innerHeight }); }, 500);
  });

  if (minWidth && window.innerWidth < minWidth) { show("smallscreen"); sendEvent("small_screen", { w: window.innerWidth }); return; }
  if (parseInt(app.dataset.answered, 10) > 0) {
    sendEvent("reload");
    next();
  } else {
    show("instructions");
    document.getElementById("begin").focus();
  }
})();
