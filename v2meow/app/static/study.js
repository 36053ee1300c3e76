"use strict";
// The listening study page: one muted video, two soundtracks kept in step with it, two (or three) answers.
const $ = (id) => document.getElementById(id);
const video = $("video");
const audios = { left: $("audio-left"), right: $("audio-right") };
let task = null;
let shownAt = 0;
let playing = null; // "left" | "right" | null

async function api(path, body) {
  const opts = { credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers = { "Content-Type": "application/json" };
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let data = {};
  try { data = await r.json(); } catch (e) { /* empty body */ }
  return { status: r.status, data };
}

function say(text) { $("status").textContent = text || ""; }

function stop() {
  video.pause();
  for (const a of Object.values(audios)) a.pause();
  playing = null;
  for (const b of document.querySelectorAll("button.play")) {
    b.innerHTML = "&#9654; Play with the video";
    b.parentElement.classList.remove("playing");
  }
}

function play(side) {
  const wasPlaying = playing;
  stop();
  if (wasPlaying === side) return; // the button toggles
  const a = audios[side];
  video.currentTime = 0;
  a.currentTime = 0;
  playing = side;
  const b = document.querySelector(`button.play[data-side="${side}"]`);
  b.innerHTML = "&#9632; Stop";
  b.parentElement.classList.add("playing");
  Promise.all([video.play(), a.play()]).catch((e) => say("Cannot play: " + e.message));
}

// Keep the playing soundtrack within 0.15 s of the video.
video.addEventListener("timeupdate", () => {
  const a = playing && audios[playing];
  if (a && !a.ended && Math.abs(a.currentTime - video.currentTime) > 0.15) a.currentTime = video.currentTime;
});
video.addEventListener("ended", stop);

async function next() {
  stop();
  say("");
  const { status, data } = await api("/api/next");
  if (status !== 200) { say(data.error || "The server did not answer (" + status + ")."); return; }
  $("progress").textContent = data.rated ? `You have rated ${data.rated} pair(s).` : "";
  task = data.task || null;
  $("task").hidden = !task;
  $("done").hidden = !!task;
  if (!task) return;
  const section = $("task");
  section.dataset.item = task.item;
  section.dataset.question = task.question;
  $("question").textContent = task.text;
  $("hint").textContent = task.hint;
  video.src = task.video;
  audios.left.src = task.left;
  audios.right.src = task.right;
  for (const b of document.querySelectorAll("button.answer")) {
    b.hidden = !task.choices.includes(b.dataset.choice);
    b.disabled = false;
  }
  shownAt = performance.now();
}

async function answer(choice) {
  if (!task) return;
  for (const b of document.querySelectorAll("button.answer")) b.disabled = true;
  const body = { item: task.item, question: task.question, choice,
                 elapsed_ms: Math.round(performance.now() - shownAt) };
  let r;
  try { r = await api("/api/answer", body); } catch (e) { r = { status: 0, data: {} }; }
  if (r.status === 200 || r.status === 409) { await next(); if (r.status === 409) say(r.data.error); return; }
  say(r.data.error || "The answer was not saved; please try again.");
  for (const b of document.querySelectorAll("button.answer")) b.disabled = false;
}

for (const b of document.querySelectorAll("button.play")) b.addEventListener("click", () => play(b.dataset.side));
for (const b of document.querySelectorAll("button.answer")) b.addEventListener("click", () => answer(b.dataset.choice));
$("name-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await api("/api/rater", { name: $("name").value });
  $("name-status").textContent = r.status === 200 ? "Saved." : (r.data.error || "Not saved.");
});
next();
