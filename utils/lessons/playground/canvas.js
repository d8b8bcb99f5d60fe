// The playground's click frontend (anywidget ESM; utils/lessons/playground/views.py ClickView).
// A canvas that shows the JPEG rendered in Python and reports clicks and box drags as synced traits.
// Coordinates sent back are image pixels (column, row), computed from the click's fraction of the
// canvas' on-screen size, so CSS scaling does not matter.
function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "sam-playground-click";
  const canvas = document.createElement("canvas");
  canvas.className = "sam-playground-canvas";
  canvas.tabIndex = 0;
  canvas.style.cursor = "crosshair";
  canvas.style.maxWidth = "100%";
  canvas.style.touchAction = "none";
  const readout = document.createElement("div");
  readout.className = "sam-playground-readout";
  readout.style.fontFamily = "monospace";
  root.append(canvas, readout);
  el.appendChild(root);
  const ctx = canvas.getContext("2d");
  const picture = new Image();
  let start = null;
  let current = null;

  function draw() {
    if (!picture.naturalWidth) return;
    ctx.drawImage(picture, 0, 0, canvas.width, canvas.height);
    if (start && current && dragged()) {
      ctx.save();
      ctx.strokeStyle = "#FF4FD8";
      ctx.lineWidth = 2;
      ctx.setLineDash([6, 4]);
      ctx.strokeRect(start.cx, start.cy, current.cx - start.cx, current.cy - start.cy);
      ctx.restore();
    }
  }
  function load() {
    picture.onload = () => {
      canvas.width = picture.naturalWidth;
      canvas.height = picture.naturalHeight;
      canvas.style.width = model.get("display_width") + "px";
      draw();
    };
    picture.src = "data:image/jpeg;base64," + model.get("picture");
  }
  function locate(event) {
    const rect = canvas.getBoundingClientRect();
    const fx = Math.min(Math.max((event.clientX - rect.left) / rect.width, 0), 0.999999);
    const fy = Math.min(Math.max((event.clientY - rect.top) / rect.height, 0), 0.999999);
    return {
      x: Math.floor(fx * model.get("image_width")),
      y: Math.floor(fy * model.get("image_height")),
      cx: fx * canvas.width,
      cy: fy * canvas.height,
    };
  }
  function dragged() {
    return Math.hypot(current.cx - start.cx, current.cy - start.cy) > 6;
  }
  function showStatus() {
    readout.textContent = model.get("status");
  }
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  canvas.addEventListener("pointerdown", (event) => {
    start = locate(event);
    current = start;
    start.button = event.button;
    start.shift = event.shiftKey || event.altKey;
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!start) return;
    current = locate(event);
    draw();
  });
  canvas.addEventListener("pointerup", (event) => {
    if (!start) return;
    current = locate(event);
    if (dragged()) {
      const box = [
        Math.min(start.x, current.x), Math.min(start.y, current.y),
        Math.max(start.x, current.x), Math.max(start.y, current.y),
      ];
      model.set("drag_box", { box: box, seq: (model.get("drag_box").seq || 0) + 1 });
    } else {
      let positive = model.get("tool") !== "negative";
      if (start.button === 2 || start.shift) positive = !positive;
      model.set("click", { x: start.x, y: start.y, positive: positive, seq: (model.get("click").seq || 0) + 1 });
    }
    model.save_changes();
    start = null;
    current = null;
    draw();
  });
  model.on("change:picture", load);
  model.on("change:status", showStatus);
  load();
  showStatus();
  return () => {
    model.off("change:picture", load);
    model.off("change:status", showStatus);
  };
}
export default { render };
