// Before/after view: the original and the result stacked, the result shown right of a split line the user drags
// (or moves with the arrow keys); zoom with the wheel or the buttons, pan by dragging. The split stays where it is
// on screen while the image moves under it.

const MIN_SCALE = 1 / 32, MAX_SCALE = 32;

export class CompareViewer {
  constructor(root) {
    this.root = root;
    this.viewport = root.querySelector('.viewport');
    this.stage = root.querySelector('.stage');
    this.before = root.querySelector('canvas.before');
    this.after = root.querySelector('canvas.after');
    this.handle = root.querySelector('.split');
    this.zoomLabel = root.querySelector('.zoom-level');
    Object.assign(this, {scale: 1, x: 0, y: 0, split: 0.5});
    this.bind();
  }

  /** Show `before` and `after` (ImageData of one size), fitted to the view unless `keepView`. */
  show(before, after, keepView = false) {
    for (const canvas of [this.before, this.after]) [canvas.width, canvas.height] = [before.width, before.height];
    this.before.getContext('2d').putImageData(before, 0, 0);
    this.setAfter(after);
    this.root.hidden = false;
    if (!keepView) this.fit();
  }

  setAfter(after) {
    this.after.getContext('2d').putImageData(after, 0, 0);
  }

  fit() {
    const {clientWidth: w, clientHeight: h} = this.viewport;
    this.scale = Math.min(w / this.before.width, h / this.before.height, 1);
    this.x = (w - this.before.width * this.scale) / 2;
    this.y = (h - this.before.height * this.scale) / 2;
    this.render();
  }

  /** Zoom by `factor` keeping the image point under (cx, cy) (viewport pixels) where it is. */
  zoomAt(factor, cx = this.viewport.clientWidth / 2, cy = this.viewport.clientHeight / 2) {
    const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    this.x = cx - (cx - this.x) * scale / this.scale;
    this.y = cy - (cy - this.y) * scale / this.scale;
    this.scale = scale;
    this.render();
  }

  render() {
    this.stage.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
    const cut = (this.split * this.viewport.clientWidth - this.x) / this.scale;
    this.after.style.clipPath = `inset(0 0 0 ${Math.min(Math.max(cut, 0), this.before.width)}px)`;
    this.handle.style.left = `${this.split * 100}%`;
    this.handle.setAttribute('aria-valuenow', Math.round(this.split * 100));
    this.stage.classList.toggle('pixelated', this.scale >= 2);
    this.zoomLabel.textContent = `${Math.round(this.scale * 100)}%`;
  }

  bind() {
    const point = event => {
      const box = this.viewport.getBoundingClientRect();
      return [event.clientX - box.left, event.clientY - box.top];
    };
    this.viewport.addEventListener('wheel', event => {
      event.preventDefault();
      this.zoomAt(Math.exp(-event.deltaY * 0.002), ...point(event));
    }, {passive: false});
    this.viewport.addEventListener('pointerdown', event => {
      const onSplit = this.handle.contains(event.target);
      const [startX, startY, x0, y0] = [event.clientX, event.clientY, this.x, this.y];
      this.viewport.setPointerCapture(event.pointerId);
      const move = e => {
        if (onSplit) this.split = Math.min(1, Math.max(0, point(e)[0] / this.viewport.clientWidth));
        else [this.x, this.y] = [x0 + e.clientX - startX, y0 + e.clientY - startY];
        this.render();
      };
      const up = () => this.viewport.removeEventListener('pointermove', move);
      this.viewport.addEventListener('pointermove', move);
      this.viewport.addEventListener('pointerup', up, {once: true});
    });
    this.viewport.addEventListener('dblclick', () => (this.scale >= 1 ? this.fit() : this.zoomAt(1 / this.scale)));
    this.handle.addEventListener('keydown', event => {
      const step = {ArrowLeft: -0.05, ArrowRight: 0.05}[event.key];
      if (!step) return;
      this.split = Math.min(1, Math.max(0, this.split + step));
      this.render();
    });
    this.root.querySelector('.zoom').addEventListener('click', ({target}) => {
      const action = target.dataset.zoom;
      if (action === 'fit') this.fit();
      else if (action === 'actual') this.zoomAt(1 / this.scale);
      else if (action) this.zoomAt(action === 'in' ? 2 : 0.5);
    });
    new ResizeObserver(() => this.render()).observe(this.viewport);
  }
}
