/* The sampler of "Sampling in your browser" (book/sampler.md): DDIM with autoguidance, run in
 * the reader's browser with onnxruntime-web.
 *
 * What runs here and where it comes from:
 *   - the two networks eps_theta (the shipped model) and eps_guide (its guide), exported to ONNX
 *     by `python -m ddpm_core.export_onnx` (model.onnx.js, guide.onnx.js);
 *   - T and alphabar_t, t = 0..T, from the model's NoiseSchedule (manifest.js): nothing of the
 *     schedule is typed here;
 *   - the DDIM step, eq-ddim-step, with x0_hat from eq-x0-from-eps and the guided prediction of
 *     eq-autoguidance: written below from the book's equations, in the order ddpm_core.ddim's
 *     _ddim_mean_variance computes them, so that the same noise gives the same digits (the test
 *     tests/test_sampler_page.py hands this page the noise of ddim_sample_loop and compares).
 *
 * Timestep convention, as in ddpm_core: the paper's t = 1..T; alphabar[0] = 1 stands for x_0.
 *
 * The page loads this file and manifest.js (small) when it opens. The runtime and the networks
 * (several MB) are loaded the first time the reader presses Generate, as classic scripts: a page
 * opened from file:// may run <script src> but not fetch() or import(). Each file is found
 * through the page's download link to it, which is where the book's build puts it. The networks
 * run in web workers (loadRuntime), or in the page where a browser refuses workers.
 *
 * globalThis.ddpmSampler, at the end, is the hook tests/test_sampler_page.py and
 * benchmarks/browser_sampler.py drive the page with.
 */
(function () {
  'use strict';

  const root = document.getElementById('ddpm-sampler');
  if (!root) return;
  const files = () => globalThis.ddpmSamplerFiles || {};

  // ------------------------------------------------------------------ files of the page

  /** The URL of one of the page's files: the href of the download link that names it. */
  function fileUrl(name) {
    for (const a of document.querySelectorAll('a.download[href]')) {
      const path = a.getAttribute('href').split(/[?#]/)[0];
      if (path === name || path.endsWith('/' + name)) return a.href;
    }
    throw new Error(`this page has no link to ${name}, so its file cannot be found`);
  }

  /** Run a classic script once; resolves when it has run. */
  const scripts = new Map();
  function loadScript(name) {
    if (!scripts.has(name)) {
      scripts.set(name, new Promise((resolve, reject) => {
        const el = document.createElement('script');
        el.src = fileUrl(name);
        el.onload = () => resolve();
        el.onerror = () => { scripts.delete(name); el.remove(); reject(new Error(`could not load ${name}`)); };
        document.head.appendChild(el);
      }));
    }
    return scripts.get(name);
  }

  /** The bytes of a payload written by ddpm_core.export_onnx.payload: base64, then gunzip. */
  async function decode(name) {
    const entry = files()[name];
    if (!entry || !entry.data) throw new Error(`${name} holds no data`);
    const binary = atob(entry.data);
    const packed = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) packed[i] = binary.charCodeAt(i);
    const stream = new Blob([packed]).stream().pipeThrough(new DecompressionStream('gzip'));
    const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
    if (bytes.length !== entry.size) throw new Error(`${name}: ${bytes.length} bytes decoded, ${entry.size} expected`);
    delete entry.data;  // the base64 text is not needed again
    return bytes;
  }

  // ------------------------------------------------------------------ the runtime and the networks

  /**
   * One onnxruntime-web with both networks, where they run: in a worker, or in the page.
   * `ort` is the runtime's global; `wasm` the bytes of its WebAssembly binary, named `wasmName`;
   * `models` {model: bytes, guide: bytes}. Returns {ready, eps(which, x, t, shape)}: eps runs
   * one network on x (a Float32Array of shape [B, C, H, W]) at the timestep t, the paper's 1..T.
   * This function is also sent to the workers as text, so it uses nothing from outside itself.
   */
  function networkHost(ort, wasm, wasmName, models) {
    ort.env.wasm.numThreads = 1;  // threads need a cross-origin-isolated page; a file on disk is not one
    ort.env.wasm.simd = true;
    ort.env.wasm.proxy = false;
    // The binary is handed over as bytes: a page opened from file:// may not fetch it from disk.
    ort.env.wasm.wasmPaths = {[wasmName]: URL.createObjectURL(new Blob([wasm], {type: 'application/wasm'}))};
    const sessions = {};
    const ready = (async () => {
      for (const [name, bytes] of Object.entries(models)) {
        sessions[name] = await ort.InferenceSession.create(bytes, {executionProviders: ['wasm'], graphOptimizationLevel: 'all'});
      }
    })();
    async function eps(which, x, t, shape) {
      const feeds = {
        x: new ort.Tensor('float32', x, shape),
        t: new ort.Tensor('int64', new BigInt64Array(shape[0]).fill(BigInt(t)), [shape[0]]),  // (B,)
      };
      return (await sessions[which].run(feeds)).eps.data;
    }
    return {ready, eps};
  }

  /** The code of a worker: it runs the runtime's text, then answers {id, which, x, t, shape} with eps. */
  function workerMain(scope) {
    let host = null;
    scope.onmessage = async ({data}) => {
      try {
        if (data.type === 'init') {
          scope.importScripts(URL.createObjectURL(new Blob([data.runtime], {type: 'text/javascript'})));
          host = networkHost(scope.ort, data.wasm, data.wasmName, data.models);
          await host.ready;
          scope.postMessage({id: data.id, ok: true});
        } else {
          const eps = await host.eps(data.which, data.x, data.t, data.shape);
          scope.postMessage({id: data.id, ok: true, eps}, [eps.buffer]);
        }
      } catch (err) {
        scope.postMessage({id: data.id, ok: false, error: String((err && err.message) || err)});
      }
    };
  }

  /** A worker that runs networkHost; call(message) answers with a Promise. */
  function startWorker() {
    const source = `${networkHost.toString()}\n(${workerMain.toString()})(self);\n`;
    const worker = new Worker(URL.createObjectURL(new Blob([source], {type: 'text/javascript'})));
    const pending = new Map();
    let next = 0;
    worker.onmessage = ({data}) => {
      const answer = pending.get(data.id);
      pending.delete(data.id);
      if (data.ok) answer.resolve(data); else answer.reject(new Error(data.error));
    };
    worker.onerror = (event) => {
      for (const answer of pending.values()) answer.reject(new Error(event.message || 'the worker failed'));
      pending.clear();
    };
    return {
      call: (message, transfer) => new Promise((resolve, reject) => {
        const id = next++;
        pending.set(id, {resolve, reject});
        worker.postMessage({...message, id}, transfer || []);
      }),
      terminate: () => worker.terminate(),
    };
  }

  let runtime = null;  // a Promise of the networks, made on the first press
  let workersWanted = null;  // how many workers; null: as many as suits this computer (the test hook may say)

  /**
   * Load the runtime and both networks, once. Each network call is split over a few workers
   * (one per core but one, up to 4): the model and the guide run side by side, and each takes a
   * slice of the batch when there are more workers than networks; the page stays responsive.
   * Where a browser refuses workers, everything runs in the page.
   * Returns {eps(which, x, t, count), where, threads, bytes, seconds}: eps runs the networks
   * named in `which` (['model'] or ['model', 'guide']) on a batch of `count` images x and
   * answers {name: eps}, each a Float32Array like x.
   */
  function loadRuntime(say) {
    if (runtime) return runtime;
    runtime = (async () => {
      const manifest = files().manifest;
      const start = performance.now();
      const total = Object.values(manifest.files).reduce((a, b) => a + b, 0);
      say(`Loading the runtime and the two networks (${megabytes(total)}, once)...`);
      await Promise.all(Object.keys(manifest.files).map(loadScript));
      const {bundle, wasm: wasmName} = manifest.runtime;
      const runtimeText = new TextDecoder().decode(await decode(bundle));
      const wasm = await decode(wasmName);
      const models = {model: await decode('model.onnx'), guide: await decode('guide.onnx')};
      const shapeOf = (count) => [count, manifest.image_channels, manifest.image_size, manifest.image_size];
      let nets = null;
      // One core stays with the page and the browser (which compiles the runtime in the background).
      const threads = workersWanted ?? Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2) - 1));
      if (threads > 0 && typeof Worker !== 'undefined') {
        const workers = [];
        try {
          for (let i = 0; i < threads; i++) workers.push(startWorker());
          await Promise.all(workers.map((w) => w.call({type: 'init', runtime: runtimeText, wasm, wasmName, models})));
          nets = {where: 'workers', threads, eps: (which, x, t, count) => splitOver(workers, which, x, t, count, shapeOf)};
        } catch (err) {
          workers.forEach((w) => w.terminate());
        }
      }
      if (!nets) {
        await runScript(runtimeText);
        const host = networkHost(globalThis.ort, wasm, wasmName, models);
        await host.ready;
        const eps = async (which, x, t, count) => {
          const out = {};
          for (const name of which) out[name] = await host.eps(name, x, t, shapeOf(count));
          return out;
        };
        nets = {where: 'page', threads: 1, eps};
      }
      return {...nets, bytes: total, seconds: (performance.now() - start) / 1000};
    })();
    runtime.catch(() => { runtime = null; });  // a failed load may be tried again
    return runtime;
  }

  /** Run JavaScript text as a classic script of the page (the runtime, where workers are refused). */
  function runScript(text) {
    return new Promise((resolve, reject) => {
      const el = document.createElement('script');
      el.src = URL.createObjectURL(new Blob([text], {type: 'text/javascript'}));
      el.onload = () => resolve();
      el.onerror = () => reject(new Error('the runtime could not start in this page'));
      document.head.appendChild(el);
    });
  }

  /**
   * Calls of one step, spread over the workers: each network named in `which` (one or both)
   * gets floor(workers / networks) slices of the batch, each slice a worker of its own.
   * Returns {name: eps} for each network, eps a Float32Array like x.
   */
  async function splitOver(workers, which, x, t, count, shapeOf) {
    const size = x.length / count;
    const slices = Math.max(1, Math.min(count, Math.floor(workers.length / which.length)));
    const per = Math.ceil(count / slices);
    const out = {}, jobs = [];
    let w = 0;
    for (const name of which) {
      out[name] = new Float32Array(x.length);
      for (let first = 0; first < count; first += per) {
        const n = Math.min(per, count - first);
        const worker = workers[w++ % workers.length];
        const part = x.slice(first * size, (first + n) * size);
        jobs.push(worker.call({which: name, x: part, t, shape: shapeOf(n)}, [part.buffer])
          .then(({eps}) => out[name].set(eps, first * size)));
      }
    }
    await Promise.all(jobs);
    return out;
  }

  // ------------------------------------------------------------------ DDIM, from the book's equations

  /** Python's round(): halves go to the even neighbour (JavaScript's Math.round sends them up). */
  function roundHalfEven(v) {
    const f = Math.floor(v), d = v - f;
    if (d !== 0.5) return d < 0.5 ? f : f + 1;
    return f % 2 === 0 ? f : f + 1;
  }

  /** ddpm_core.ddim.ddim_timesteps(T, S): S evenly spaced steps from T down to 1. */
  function ddimTimesteps(T, S) {
    if (S === 1) return [T];
    const steps = [];
    for (let i = 0; i < S; i++) steps.push(roundHalfEven(T - i * (T - 1) / (S - 1)));
    return steps;
  }

  /**
   * The guided prediction, eq-autoguidance: eps_w = eps_guide + w (eps_theta - eps_guide).
   * w = 1 is the model alone, and the guide is not run (as ddpm_core.guidance.Autoguided).
   */
  async function guidedEps(nets, x, t, count, w) {
    if (w === 1) return (await nets.eps(['model'], x, t, count)).model;
    const {model: epsModel, guide: epsGuide} = await nets.eps(['model', 'guide'], x, t, count);
    const eps = new Float32Array(epsModel.length);
    for (let i = 0; i < eps.length; i++) eps[i] = epsGuide[i] + w * (epsModel[i] - epsGuide[i]);
    return eps;
  }

  /**
   * One DDIM step from x_t to x_s (s < t; s = 0 is x_0), eq-ddim-step:
   *   x0_hat  = sqrt(1 / alphabar_t) x_t - sqrt(1 / alphabar_t - 1) eps_hat,  eq-x0-from-eps,
   *             clipped to [-1, 1], and eps_hat recomputed from the clipped x0_hat so that the
   *             pair still gives x_t: eps_hat = (x_t - sqrt(alphabar_t) x0_hat) / sqrt(1 - alphabar_t);
   *   sigma^2 = eta^2 (1 - alphabar_s) / (1 - alphabar_t) (1 - alphabar_t / alphabar_s);
   *   x_s     = sqrt(alphabar_s) x0_hat + sqrt(1 - alphabar_s - sigma^2) eps_hat + sigma z.
   * Returns {x: x_s, x0: x0_hat}, Float32Arrays like x_t.
   */
  function ddimStep(abar, x, epsHat, t, s, eta, z) {
    const abarT = abar[t], abarS = abar[s];  // alphabar_0 = 1 stands for x_0
    const recip = Math.sqrt(1 / abarT), recipm1 = Math.sqrt(1 / abarT - 1);  // eq-x0-from-eps
    const variance = eta ** 2 * (1 - abarS) / (1 - abarT) * (1 - abarT / abarS);  // sigma^2
    // Rounding can make 1 - alphabar_s - sigma^2 slightly negative when it should be 0.
    const epsCoef = Math.sqrt(Math.max(1 - abarS - variance, 0));
    const sigma = Math.sqrt(variance);
    const sqrtAbarT = Math.sqrt(abarT), sqrtOneMinusAbarT = Math.sqrt(1 - abarT), sqrtAbarS = Math.sqrt(abarS);
    const xs = new Float32Array(x.length), x0 = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const pred = Math.min(1, Math.max(-1, recip * x[i] - recipm1 * epsHat[i]));  // clipped x0_hat
      const eps = (x[i] - sqrtAbarT * pred) / sqrtOneMinusAbarT;
      x0[i] = pred;
      xs[i] = sqrtAbarS * pred + epsCoef * eps + sigma * z[i];  // sigma = 0 when s = 0
    }
    return {x: xs, x0};
  }

  // ------------------------------------------------------------------ noise

  /**
   * Standard normal numbers from a seed: mulberry32 for uniforms, Box-Muller for normals. The
   * same seed gives the same digits here every time, but not the digits torch.manual_seed gives.
   */
  function seededNormals(seed) {
    let state = seed >>> 0;
    const uniform = () => {
      state = (state + 0x6D2B79F5) >>> 0;
      let r = Math.imul(state ^ (state >>> 15), 1 | state);
      r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
      return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
    };
    return (n) => {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i += 2) {
        const u = 1 - uniform(), v = uniform();  // u in (0, 1]: log(u) is finite
        const radius = Math.sqrt(-2 * Math.log(u));
        out[i] = radius * Math.cos(2 * Math.PI * v);
        if (i + 1 < n) out[i + 1] = radius * Math.sin(2 * Math.PI * v);
      }
      return out;
    };
  }

  /** The test hook's noise: x_T, then one z per step, in the order ddim_sample_loop draws them. */
  function givenNoise(arrays) {
    let next = 0;
    return (n) => {
      if (next >= arrays.length) throw new Error('the noise handed to the page has run out');
      const out = Float32Array.from(arrays[next++]);
      if (out.length !== n) throw new Error(`noise array ${next - 1} has ${out.length} numbers, ${n} needed`);
      return out;
    };
  }

  // ------------------------------------------------------------------ the sampling loop

  /**
   * DDIM over ddimTimesteps(T, steps), as ddpm_core.ddim.ddim_sample_loop, with the guided eps.
   * After each step onStep({k, t, x, x0}) is called (x is x_s, the input of the next step);
   * shouldStop() is asked after each step. Returns {x, steps: steps done, stopped}.
   */
  async function ddimSample(nets, {count, steps, eta, weight, noise, onStep, shouldStop}) {
    const manifest = files().manifest;
    const abar = manifest.alphas_cumprod;
    const size = manifest.image_channels * manifest.image_size * manifest.image_size;
    const timesteps = ddimTimesteps(manifest.T, steps);
    let x = noise(count * size);  // x_T ~ N(0, I)
    for (let k = 0; k < timesteps.length; k++) {
      const t = timesteps[k], s = k + 1 < timesteps.length ? timesteps[k + 1] : 0;
      const eps = await guidedEps(nets, x, t, count, weight);
      const z = noise(count * size);  // drawn even when sigma = 0, as ddim_sample_loop does
      const step = ddimStep(abar, x, eps, t, s, eta, z);
      x = step.x;
      if (onStep) await onStep({k, t, s, x, x0: step.x0});
      if (k + 1 < timesteps.length && shouldStop && shouldStop()) return {x, steps: k + 1, stopped: true};
    }
    return {x, steps: timesteps.length, stopped: false};
  }

  // ------------------------------------------------------------------ checking what the reader typed

  /** The value of a control, checked; throws an Error whose message names the control. */
  function readControls(T) {
    const form = root.querySelector('form');
    const text = (name) => form.elements[name].value.trim();
    const wholeNumber = (name, label, low, high) => {
      const raw = text(name), v = Number(raw);
      if (raw === '' || !Number.isInteger(v) || v < low || v > high) {
        const range = high === Infinity ? `${low} or more` : `from ${low} to ${high}`;
        throw new Error(`${label} must be a whole number ${range}, got ${raw === '' ? 'nothing' : `"${raw}"`}.`);
      }
      return v;
    };
    const number = (name, label, low) => {
      const raw = text(name), v = Number(raw);
      if (raw === '' || !Number.isFinite(v) || v < low) {
        throw new Error(`${label} must be a number of at least ${low}, got ${raw === '' ? 'nothing' : `"${raw}"`}.`);
      }
      return v;
    };
    return {
      seed: wholeNumber('seed', 'Seed', 0, 2 ** 32 - 1),
      steps: wholeNumber('steps', 'DDIM steps', 1, T),
      eta: number('eta', 'eta', 0),
      weight: number('weight', 'The guidance weight w', 1),
    };
  }

  // ------------------------------------------------------------------ drawing

  const DIGITS = 16;  // the grid: 4 x 4 digits
  const GAP = 2;  // pixels between digits on the grid

  function megabytes(bytes) { return `${(bytes / 1e6).toFixed(1)} MB`; }

  /** Grey levels of one image: -1 is black, 1 is white (values outside are clipped). */
  function toGrey(values, offset, size) {
    const grey = new Uint8ClampedArray(size);
    for (let i = 0; i < size; i++) grey[i] = Math.round((values[offset + i] + 1) * 127.5);
    return grey;
  }

  function putGrey(ctx, grey, side, left, top) {
    const image = ctx.createImageData(side, side);
    for (let i = 0; i < grey.length; i++) {
      image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = grey[i];
      image.data[4 * i + 3] = 255;
    }
    ctx.putImageData(image, left, top);
  }

  const ui = {
    form: root.querySelector('form'),
    generate: root.querySelector('button[name=generate]'),
    stop: root.querySelector('button[name=stop]'),
    progress: root.querySelector('progress'),
    status: root.querySelector('.ddpm-sampler-status'),
    error: root.querySelector('.ddpm-sampler-error'),
    grid: root.querySelector('canvas.ddpm-sampler-grid'),
    chain: root.querySelector('.ddpm-sampler-chain'),
    slider: root.querySelector('.ddpm-sampler-chain input[type=range]'),
    digit: root.querySelector('.ddpm-sampler-chain input[name=digit]'),
    xt: root.querySelector('canvas.ddpm-sampler-xt'),
    x0: root.querySelector('canvas.ddpm-sampler-x0'),
    label: root.querySelector('.ddpm-sampler-chain-label'),
    xtCaption: root.querySelector('.ddpm-sampler-xt-caption'),
  };

  function say(message) { ui.status.textContent = message; }
  function complain(message) {
    ui.error.textContent = message;
    ui.error.hidden = !message;
  }

  function gridShape(count) {
    const cols = Math.ceil(Math.sqrt(count));
    return {cols, rows: Math.ceil(count / cols)};
  }

  /** Draw one grey image per digit on the grid, the selected digit framed. */
  function drawGrid(greys, count, side, selected) {
    const {cols, rows} = gridShape(count);
    const cell = side + GAP;
    if (ui.grid.width !== cols * cell + GAP || ui.grid.height !== rows * cell + GAP) {
      ui.grid.width = cols * cell + GAP;
      ui.grid.height = rows * cell + GAP;
    }
    const ctx = ui.grid.getContext('2d');
    ctx.fillStyle = '#888';
    ctx.fillRect(0, 0, ui.grid.width, ui.grid.height);
    for (let i = 0; i < count; i++) {
      const left = GAP + (i % cols) * cell, top = GAP + Math.floor(i / cols) * cell;
      if (i === selected) {
        ctx.fillStyle = '#e8a33d';
        ctx.fillRect(left - GAP, top - GAP, side + 2 * GAP, side + 2 * GAP);
      }
      putGrey(ctx, greys.subarray(i * side * side, (i + 1) * side * side), side, left, top);
    }
  }

  // ------------------------------------------------------------------ one run, and its chain

  // The chain of the last run, as grey levels: xs[k] is the sample after k steps (xs[0] = x_T,
  // xs[S] = x_0) and x0s[k] the x0_hat computed from xs[k]; timesteps[k] the t of xs[k].
  let last = null;
  let stopRequested = false;
  let noiseOverride = null;  // the test hook's noise for the next run
  let running = false;

  // Symbols for the labels (HTML, from this file only): x_t, x_0 and x0_hat as the book writes them.
  const X_T = '<i>x</i><sub><i>t</i></sub>', X_0 = '<i>x</i><sub>0</sub>', X0_HAT = '<i>x̂</i><sub>0</sub>';

  function showChain() {
    if (!last || last.steps === 0) { ui.chain.hidden = true; return; }
    ui.chain.hidden = false;
    const side = files().manifest.image_size, size = side * side;
    const k = Number(ui.slider.value), d = Number(ui.digit.value) - 1;
    const S = last.plannedSteps, end = k === last.steps;
    // x0_hat at position k is predicted from xs[k]. After the last step there is none left to
    // predict: the last x0_hat is the sample x_0 itself (s = 0 in eq-ddim-step); a stopped run has none.
    const predicted = !end ? last.x0s[k] : (last.stopped ? null : last.x0s[k - 1]);
    const pixels = (frame) => frame.subarray(d * size, (d + 1) * size);
    putGrey(ui.xt.getContext('2d'), pixels(last.xs[k]), side, 0, 0);
    if (predicted) putGrey(ui.x0.getContext('2d'), pixels(predicted), side, 0, 0);
    else ui.x0.getContext('2d').clearRect(0, 0, side, side);
    let label;
    if (k === 0) {
      label = `before the first step: ${X_T} at <i>t</i> = ${last.timesteps[0]}, pure noise, and the ${X0_HAT} predicted from it`;
    } else if (!end) {
      label = `after step ${k} of ${S}: ${X_T} at <i>t</i> = ${last.timesteps[k]}, and the ${X0_HAT} predicted from it`;
    } else if (!last.stopped) {
      label = `after the last step: the sample ${X_0}, which is the ${X0_HAT} of the last step`;
    } else {
      label = `stopped after step ${k} of ${S}: ${X_T} at <i>t</i> = ${last.timesteps[k]}; no ${X0_HAT} was predicted from it`;
    }
    ui.label.innerHTML = `Digit ${d + 1}, ${label}.`;
    ui.xtCaption.innerHTML = end && !last.stopped ? X_0 : X_T;
    // The grid follows the slider: every digit's x0_hat at that step (where a stopped run ends, x_t).
    drawGrid(predicted || last.xs[k], last.count, side, d);
  }

  async function generate() {
    if (running) return;
    complain('');
    const manifest = files().manifest;
    let controls;
    try {
      controls = readControls(manifest.T);
    } catch (err) {
      complain(err.message);
      say('');
      return;
    }
    running = true;
    stopRequested = false;
    ui.generate.disabled = true;
    ui.stop.disabled = false;
    ui.chain.hidden = true;  // the last run's chain comes back with this run's
    try {
      const firstLoad = !runtime;
      const nets = await loadRuntime(say);
      if (firstLoad) {
        const where = nets.where === 'workers' ? `${nets.threads} worker${nets.threads > 1 ? 's' : ''}` : 'the page itself';
        root.querySelector('.ddpm-sampler-loads').textContent = `Loaded ${megabytes(nets.bytes)} in `
          + `${nets.seconds.toFixed(1)} s; the networks run in ${where}.`;
      }
      const side = manifest.image_size, size = side * side * manifest.image_channels;
      const noiseArrays = noiseOverride;
      noiseOverride = null;
      const count = noiseArrays ? noiseArrays[0].length / size : DIGITS;
      const noise = noiseArrays ? givenNoise(noiseArrays) : seededNormals(controls.seed);
      const timesteps = ddimTimesteps(manifest.T, controls.steps);
      const run = {
        ...controls, count, plannedSteps: controls.steps, timesteps: timesteps.concat([0]),
        xs: [], x0s: [], steps: 0, stopped: false, samples: null, loadSeconds: nets.seconds, bytes: nets.bytes,
      };
      ui.progress.max = controls.steps;
      ui.progress.value = 0;
      const start = performance.now();
      const result = await ddimSample(nets, {
        count, steps: controls.steps, eta: controls.eta, weight: controls.weight,
        noise: (n) => {
          const values = noise(n);
          if (run.xs.length === 0) run.xs.push(toGrey(values, 0, values.length));  // x_T
          return values;
        },
        onStep: async ({k, t, x, x0}) => {
          run.x0s.push(toGrey(x0, 0, x0.length));
          run.xs.push(toGrey(x, 0, x.length));
          run.steps = k + 1;
          ui.progress.value = k + 1;
          say(`Step ${k + 1} of ${controls.steps} (t = ${t}): the grid shows each digit's x̂₀.`);
          drawGrid(run.x0s[k], count, side, -1);
          await new Promise((resolve) => setTimeout(resolve, 0));  // let the page draw
        },
        shouldStop: () => stopRequested,
      });
      run.seconds = (performance.now() - start) / 1000;
      run.stopped = result.stopped;
      run.samples = result.x;
      last = run;
      const done = result.stopped ? `Stopped after step ${result.steps} of ${controls.steps}` :
        `${count} digits in ${controls.steps} steps`;
      say(`${done}: ${run.steps * (controls.weight === 1 ? 1 : 2)} network calls in ${run.seconds.toFixed(1)} s.`);
      ui.slider.max = String(run.steps);
      ui.slider.value = String(run.steps);
      ui.digit.max = String(count);
      if (Number(ui.digit.value) > count) ui.digit.value = '1';
      showChain();
    } catch (err) {
      complain(`Sampling failed: ${err.message}`);
      say('');
    } finally {
      running = false;
      ui.generate.disabled = false;
      ui.stop.disabled = true;
    }
  }

  ui.form.addEventListener('submit', (event) => { event.preventDefault(); generate(); });
  ui.stop.addEventListener('click', () => { stopRequested = true; say('Stopping after this step...'); });
  ui.slider.addEventListener('input', showChain);
  ui.digit.addEventListener('input', () => {
    const d = Number(ui.digit.value);
    if (last && Number.isInteger(d) && d >= 1 && d <= last.count) showChain();
  });
  ui.grid.addEventListener('click', (event) => {
    if (!last) return;
    const rect = ui.grid.getBoundingClientRect();
    const scale = ui.grid.width / rect.width;
    const side = files().manifest.image_size, cell = side + GAP;
    const col = Math.floor(((event.clientX - rect.left) * scale) / cell);
    const row = Math.floor(((event.clientY - rect.top) * scale) / cell);
    const index = row * gridShape(last.count).cols + col;
    if (index >= 0 && index < last.count) {
      ui.digit.value = String(index + 1);
      showChain();
    }
  });

  // The steps field says what it accepts, from the schedule, and the page what the first press loads.
  {
    const manifest = files().manifest;
    ui.form.elements.steps.max = String(manifest.T);
    root.querySelector('.ddpm-sampler-T').textContent = String(manifest.T);
    const total = Object.values(manifest.files).reduce((a, b) => a + b, 0);
    root.querySelector('.ddpm-sampler-loads').textContent = `The first press loads ${megabytes(total)}, once: `
      + `${manifest.runtime.package} ${manifest.runtime.version} (its WebAssembly binary ${manifest.runtime.wasm}) `
      + 'and the two networks.';
    // Until the first run, the grid shows where the digits will appear.
    drawGrid(new Uint8ClampedArray(DIGITS * manifest.image_size ** 2), DIGITS, manifest.image_size, -1);
    ui.generate.disabled = false;
  }

  // ------------------------------------------------------------------ the hook for tests and benchmarks

  globalThis.ddpmSampler = {
    /** ddim_timesteps(T, S) as this page computes it. */
    timesteps: (S) => ddimTimesteps(files().manifest.T, S),
    /** Load the runtime and the networks (the first press does the same). */
    load: () => loadRuntime(say).then((nets) => ({bytes: nets.bytes, seconds: nets.seconds, where: nets.where, threads: nets.threads})),
    /** Run the networks in this many workers (0: in the page's own thread); before the first load only. */
    useWorkers: (count) => { workersWanted = count; },
    /** eps of one network ('model' or 'guide') for x (count * 1024 numbers) at timestep t. */
    eps: async (which, x, t) => {
      const nets = await loadRuntime(say);
      const size = files().manifest.image_size ** 2 * files().manifest.image_channels;
      return Array.from((await nets.eps([which], Float32Array.from(x), t, x.length / size))[which]);
    },
    /** The next press of Generate takes x_T and then each step's z from these arrays (each count * 1024). */
    useNoise: (arrays) => { noiseOverride = arrays.map((a) => Float32Array.from(a)); },
    /** Whether a run is going on. */
    running: () => running,
    /** The last finished (or stopped) run: its settings, x_0 and timings. */
    lastRun: () => last && {
      seed: last.seed, steps: last.steps, plannedSteps: last.plannedSteps, eta: last.eta, weight: last.weight,
      count: last.count, stopped: last.stopped, seconds: last.seconds, calls: last.steps * (last.weight === 1 ? 1 : 2),
      loadSeconds: last.loadSeconds, bytes: last.bytes, samples: Array.from(last.samples),
    },
  };
})();
