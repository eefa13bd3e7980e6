"""A drawing pad for digits: white ink on black, like MNIST (a small Streamlit v2 component)."""

from __future__ import annotations

import base64

import streamlit as st

HTML = """
<div class="pad">
  <canvas width="280" height="280" aria-label="Digit drawing pad"></canvas>
  <button type="button">Clear</button>
</div>
"""

CSS = """
.pad { display: flex; flex-direction: column; gap: 0.5rem; align-items: flex-start; }
canvas { width: 280px; height: 280px; border-radius: 0.5rem; touch-action: none; cursor: crosshair;
         background: #000; border: 1px solid var(--st-border-color, #ccc); }
button { font: inherit; padding: 0.25rem 0.75rem; border-radius: 0.5rem; border: 1px solid #ccc;
         background: var(--st-secondary-background-color, #f0f2f6); cursor: pointer; }
"""

JS = """
export default function (component) {
  const { parentElement, setStateValue } = component;
  const canvas = parentElement.querySelector("canvas");
  if (!canvas || canvas.dataset.ready) return;  // set up once; later calls are reruns
  canvas.dataset.ready = "1";
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 22; ctx.lineCap = "round"; ctx.lineJoin = "round";
  let drawing = false;
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    const [x, y] = point(event);
    ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 0.1, y + 0.1); ctx.stroke();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const [x, y] = point(event);
    ctx.lineTo(x, y); ctx.stroke();
  });
  const finish = () => {
    if (!drawing) return;
    drawing = false;
    setStateValue("image", canvas.toDataURL("image/png"));  // each finished stroke updates the prediction
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  parentElement.querySelector("button").addEventListener("click", () => { clear(); setStateValue("image", null); });
}
"""

_PAD = st.components.v2.component("cnn_explorer_digit_pad", html=HTML, css=CSS, js=JS)


def digit_pad(key: str) -> bytes | None:
    """Show the pad; return the drawing as PNG bytes once something was drawn, else None."""
    result = _PAD(key=key, default={"image": None}, on_image_change=lambda: None)
    data_url = getattr(result, "image", None)
    if not data_url or "," not in data_url:
        return None
    return base64.b64decode(data_url.split(",", 1)[1])
