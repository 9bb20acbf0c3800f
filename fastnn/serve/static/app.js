// fastnn.serve's page: draw on #pad, post it as a PNG to /predict while drawing, show the answer.
"use strict";

(() => {
  const pad = document.getElementById("pad");
  const pen = pad.getContext("2d");
  const clearButton = document.getElementById("clear");
  const statusLine = document.getElementById("status");
  const prediction = document.getElementById("prediction");
  const confidence = document.getElementById("confidence");
  const bars = document.getElementById("bars");
  const received = document.getElementById("received");

  // Dark ink on white paper, as a pen on paper or a scan: fastnn's preprocessing (the same as
  // `python -m fastnn.predict` applies to a photo) inverts it to MNIST's light ink on black.
  const PAPER = "#ffffff";
  const INK = "#000000";
  // MNIST strokes are 2 to 3 pixels wide in its 20-pixel box: a digit drawn across most of
  // the 280-pixel pad needs about this width to look like one.
  const LINE_WIDTH = pad.width / 14;
  const INTERVAL_MS = 100; // at most ten posts a second while the pointer moves

  let version = 0; // bumps with every change of the drawing
  let clearedAt = 0; // the version the pad was last cleared at
  let sentVersion = -1; // the version of the last drawing posted
  let empty = true;
  let busy = false; // a post is on its way: the next waits for its answer
  let lastPost = -Infinity;
  let timer = null;
  let stroke = null; // {id, x, y} of the pointer drawing now

  function changed() {
    version += 1;
    pad.dataset.version = String(version);
  }

  function clearPad() {
    pen.fillStyle = PAPER;
    pen.fillRect(0, 0, pad.width, pad.height);
    empty = true;
    changed();
    clearedAt = version;
    clearTimeout(timer);
    timer = null;
    showNothing("Draw a digit in the box.");
    prediction.dataset.version = String(version);
  }

  function at(event) {
    // CSS may show the pad at another size than its 280 x 280 pixels; the drawing area is
    // inside the border (clientLeft/clientTop), clientWidth x clientHeight CSS pixels.
    const box = pad.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left - pad.clientLeft) * pad.width) / pad.clientWidth,
      y: ((event.clientY - box.top - pad.clientTop) * pad.height) / pad.clientHeight,
    };
  }

  function dot(p) {
    pen.fillStyle = INK;
    pen.beginPath();
    pen.arc(p.x, p.y, LINE_WIDTH / 2, 0, 2 * Math.PI);
    pen.fill();
  }

  function line(from, to) {
    pen.strokeStyle = INK;
    pen.lineWidth = LINE_WIDTH;
    pen.lineCap = "round";
    pen.lineJoin = "round";
    pen.beginPath();
    pen.moveTo(from.x, from.y);
    pen.lineTo(to.x, to.y);
    pen.stroke();
  }

  pad.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    if (stroke) return; // a second finger does not draw
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    const p = at(event);
    stroke = { id: event.pointerId, ...p };
    dot(p); // a tap is a dot
    empty = false;
    changed();
    schedule(false);
  });

  pad.addEventListener("pointermove", (event) => {
    if (!stroke || event.pointerId !== stroke.id) return;
    // Coalesced events: the points a fast stroke passed between two animation frames.
    const points = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const e of points.length ? points : [event]) {
      const p = at(e);
      line(stroke, p);
      stroke.x = p.x;
      stroke.y = p.y;
    }
    changed();
    schedule(false);
  });

  function endStroke(event) {
    if (!stroke || event.pointerId !== stroke.id) return;
    stroke = null;
    schedule(true);
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  clearButton.addEventListener("click", clearPad);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") clearPad();
  });

  // Post the drawing now (the stroke ended) or once INTERVAL_MS has passed since the last
  // post; one post at a time, and the drawing as it is when the post leaves.
  function schedule(now) {
    if (empty || busy || version === sentVersion) return; // an answer's arrival reschedules
    const wait = now ? 0 : Math.max(0, lastPost + INTERVAL_MS - performance.now());
    clearTimeout(timer);
    timer = setTimeout(post, wait);
  }

  async function post() {
    timer = null;
    if (empty || busy) return;
    busy = true;
    lastPost = performance.now();
    const v = version;
    sentVersion = v;
    try {
      const png = await new Promise((resolve) => pad.toBlob(resolve, "image/png"));
      const response = await fetch("predict", {
        method: "POST",
        headers: { "Content-Type": "image/png" },
        body: png,
      });
      const answer = await response.json();
      if (v > clearedAt) {
        // Not for a drawing cleared since: show it, stamped with the version it answers.
        if (response.ok) show(answer);
        else showNothing(answer.error || `error ${response.status}`, true);
        prediction.dataset.version = String(v);
      }
    } catch (error) {
      if (v > clearedAt) {
        showNothing(`No answer from the server (${error.message}).`, true);
        prediction.dataset.version = String(v);
      }
    } finally {
      busy = false;
      schedule(stroke === null); // the drawing changed while the post was away
    }
  }

  function makeBars(classes) {
    bars.replaceChildren();
    for (const label of classes) {
      const item = document.createElement("li");
      item.dataset.label = String(label);
      const name = document.createElement("span");
      name.className = "label";
      name.textContent = String(label);
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      track.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      item.append(name, track, value);
      bars.append(item);
    }
  }

  function show(answer) {
    const labels = answer.classes.map(String);
    const current = Array.from(bars.children, (item) => item.dataset.label);
    if (current.join("\n") !== labels.join("\n")) makeBars(labels);
    const best = labels.indexOf(String(answer.class));
    answer.probabilities.forEach((p, i) => {
      const item = bars.children[i];
      item.classList.toggle("top", i === best);
      item.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
      item.querySelector(".value").textContent = `${(100 * p).toFixed(1)}%`;
    });
    prediction.textContent = String(answer.class);
    confidence.textContent = `${(100 * answer.probabilities[best]).toFixed(1)}% sure`;
    statusLine.textContent = "";
    statusLine.classList.remove("error");
    drawReceived(answer.image);
  }

  function showNothing(message, isError = false) {
    prediction.textContent = "\u2013";
    confidence.textContent = "\u00a0";
    for (const item of bars.children) {
      item.classList.remove("top");
      item.querySelector(".fill").style.width = "0";
      item.querySelector(".value").textContent = "";
    }
    statusLine.textContent = message;
    statusLine.classList.toggle("error", isError);
    drawReceived(null);
  }

  function drawReceived(pixels) {
    const view = received.getContext("2d");
    const image = view.createImageData(28, 28);
    for (let i = 0; i < 28 * 28; i += 1) {
      const grey = pixels ? pixels[i] : 0;
      image.data.set([grey, grey, grey, 255], 4 * i);
    }
    view.putImageData(image, 0, 0);
  }

  makeBars(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  clearPad();
})();
