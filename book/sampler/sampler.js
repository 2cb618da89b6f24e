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
 *     tests/test_sampler_page.py hands this page the noise of ddim_sample_loop and compares);
 *   - the forward process in closed form, eq-forward-closed-form, for the section "Draw a digit,
 *     noise it, denoise it": the reader's drawing x_0 is noised to x_t in one step and the same
 *     DDIM loop denoises it from t down to 0 (SDEdit; Meng et al., 2022).
 *
 * Timestep convention, as in ddpm_core: the paper's t = 1..T; alphabar[0] = 1 stands for x_0.
 *
 * The page loads this file and manifest.js (small) when it opens. The runtime and the networks
 * (several MB) are loaded at the first press of Generate or Noise and denoise, as classic
 * scripts: a page opened from file:// may run <script src> but not fetch() or import(). Each
 * file is found through the page's download link to it, which is where the book's build puts
 * it. The networks run in web workers (loadRuntime), or in the page where a browser refuses
 * workers.
 *
 * globalThis.ddpmSampler, at the end, is the hook tests/test_sampler_page.py and
 * benchmarks/browser_sampler.py drive the page with.
 */
(function () {
  'use strict';

  const root = document.getElementById('ddpm-sampler');  // the sampler
  if (!root) return;
  const editRoot = document.getElementById('ddpm-sdedit');  // draw, noise, denoise
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

  /**
   * ddpm_core.ddim.ddim_timesteps(T, S): S evenly spaced steps from T down to 1. Denoising a
   * drawing from x_t takes ddimTimesteps(t, S): the same spacing, from t down to 1.
   */
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

  /**
   * The forward process in one step, eq-forward-closed-form (ddpm_core.forward.q_sample):
   *   x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) eps,  eps ~ N(0, I).
   */
  function qSample(abar, x0, t, eps) {
    const a = Math.sqrt(abar[t]), b = Math.sqrt(1 - abar[t]);
    const xt = new Float32Array(x0.length);
    for (let i = 0; i < x0.length; i++) xt[i] = a * x0[i] + b * eps[i];
    return xt;
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
   * The DDIM loop of ddpm_core.ddim.ddim_sample_loop, with the guided eps, from a given x at
   * timesteps[0] down to x_0: timesteps is decreasing, and the step after its last goes to 0.
   * The sampler starts it at x_T ~ N(0, I) with ddimTimesteps(T, S); the drawing, at the x_t of
   * eq-forward-closed-form with ddimTimesteps(t, S). noise(n) gives each step's z.
   * After each step onStep({k, t, s, x, x0}) is called (x is x_s, the input of the next step);
   * shouldStop() is asked after each step. Returns {x, steps: steps done, stopped}.
   */
  async function ddimLoop(nets, x, timesteps, {count, eta, weight, noise, onStep, shouldStop}) {
    const abar = files().manifest.alphas_cumprod;
    for (let k = 0; k < timesteps.length; k++) {
      const t = timesteps[k], s = k + 1 < timesteps.length ? timesteps[k + 1] : 0;
      const eps = await guidedEps(nets, x, t, count, weight);
      const z = noise(x.length);  // drawn even when sigma = 0, as ddim_sample_loop does
      const step = ddimStep(abar, x, eps, t, s, eta, z);
      x = step.x;
      if (onStep) await onStep({k, t, s, x, x0: step.x0});
      if (k + 1 < timesteps.length && shouldStop && shouldStop()) return {x, steps: k + 1, stopped: true};
    }
    return {x, steps: timesteps.length, stopped: false};
  }

  /** DDIM sampling as ddim_sample_loop: x_T ~ N(0, I), then ddimLoop over ddimTimesteps(T, steps). */
  function ddimSample(nets, {count, steps, ...options}) {
    const manifest = files().manifest;
    const size = manifest.image_channels * manifest.image_size * manifest.image_size;
    const x = options.noise(count * size);  // x_T ~ N(0, I)
    return ddimLoop(nets, x, ddimTimesteps(manifest.T, steps), {count, ...options});
  }

  // ------------------------------------------------------------------ checking what the reader typed

  /**
   * Readers of a form's fields: each returns a field's value, checked, or throws an Error whose
   * message names the field and says what it accepts.
   */
  function fieldReader(form) {
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
    return {wholeNumber, number};
  }

  /** The sampler's settings, checked. */
  function readControls(T) {
    const {wholeNumber, number} = fieldReader(root.querySelector('form'));
    return {
      seed: wholeNumber('seed', 'Seed', 0, 2 ** 32 - 1),
      steps: wholeNumber('steps', 'DDIM steps', 1, T),
      eta: number('eta', 'eta', 0),
      weight: number('weight', 'The guidance weight w', 1),
    };
  }

  /** The settings of "Draw a digit, noise it, denoise it", checked: t first, as steps may not exceed it. */
  function readEditControls(T) {
    const {wholeNumber} = fieldReader(editRoot.querySelector('form'));
    const t = wholeNumber('t', 't', 1, T);
    return {
      t,
      steps: wholeNumber('steps', 'DDIM steps', 1, t),  // the label says: 1 to t
      seed: wholeNumber('seed', 'Seed', 0, 2 ** 32 - 1),
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

  // The controls of "Draw a digit, noise it, denoise it", where the page has that section.
  const edit = editRoot && {
    form: editRoot.querySelector('form'),
    run: editRoot.querySelector('button[name=denoise]'),
    clear: editRoot.querySelector('button[name=clear]'),
    pad: editRoot.querySelector('canvas.ddpm-sdedit-pad'),
    status: editRoot.querySelector('.ddpm-sampler-status'),
    error: editRoot.querySelector('.ddpm-sampler-error'),
    x0: editRoot.querySelector('canvas.ddpm-sdedit-x0'),
    xt: editRoot.querySelector('canvas.ddpm-sdedit-xt'),
    result: editRoot.querySelector('canvas.ddpm-sdedit-result'),
    xtCaption: editRoot.querySelector('.ddpm-sdedit-xt-caption'),
    resultCaption: editRoot.querySelector('.ddpm-sdedit-result-caption'),
    chain: editRoot.querySelector('.ddpm-sampler-chain'),
    slider: editRoot.querySelector('.ddpm-sampler-chain input[type=range]'),
    chainXt: editRoot.querySelector('canvas.ddpm-sampler-xt'),
    chainX0: editRoot.querySelector('canvas.ddpm-sampler-x0'),
    chainXtCaption: editRoot.querySelector('.ddpm-sampler-xt-caption'),
    label: editRoot.querySelector('.ddpm-sampler-chain-label'),
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
  let noiseOverride = null;  // the test hook's noise for the next run (of either section)
  let running = false;  // one run at a time, of either section: they share the networks
  let sampleRuns = 0;  // how many presses of Generate have run to the end (or to Stop)

  // Symbols for the labels (HTML, from this file only): x_t, x_0 and x0_hat as the book writes them.
  const X_T = '<i>x</i><sub><i>t</i></sub>', X_0 = '<i>x</i><sub>0</sub>', X0_HAT = '<i>x̂</i><sub>0</sub>';

  /**
   * What position k of a run's chain shows (HTML): x_t and the x0_hat predicted from it.
   * `start` says what x_t is before the first step.
   */
  function chainLabel(run, k, start) {
    const S = run.plannedSteps;
    if (k === 0) {
      return `before the first step: ${X_T} at <i>t</i> = ${run.timesteps[0]}, ${start}, and the ${X0_HAT} predicted from it`;
    } else if (k < run.steps) {
      return `after step ${k} of ${S}: ${X_T} at <i>t</i> = ${run.timesteps[k]}, and the ${X0_HAT} predicted from it`;
    } else if (!run.stopped) {
      return `after the last step: the sample ${X_0}, which is the ${X0_HAT} of the last step`;
    }
    return `stopped after step ${k} of ${S}: ${X_T} at <i>t</i> = ${run.timesteps[k]}; no ${X0_HAT} was predicted from it`;
  }

  /** Mark a run as going on, or over: while one runs, neither section's button starts another. */
  function setBusy(on) {
    running = on;
    ui.generate.disabled = on;
    if (edit) edit.run.disabled = on;
  }

  /** Load the runtime and the networks (once), and say on the sampler's line what was loaded. */
  async function networks(say) {
    const firstLoad = !runtime;
    const nets = await loadRuntime(say);
    if (firstLoad) {
      const where = nets.where === 'workers' ? `${nets.threads} worker${nets.threads > 1 ? 's' : ''}` : 'the page itself';
      root.querySelector('.ddpm-sampler-loads').textContent = `Loaded ${megabytes(nets.bytes)} in `
        + `${nets.seconds.toFixed(1)} s; the networks run in ${where}.`;
    }
    return nets;
  }

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
    ui.label.innerHTML = `Digit ${d + 1}, ${chainLabel(last, k, 'pure noise')}.`;
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
    setBusy(true);
    stopRequested = false;
    ui.stop.disabled = false;
    ui.chain.hidden = true;  // the last run's chain comes back with this run's
    try {
      const nets = await networks(say);
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
      run.number = ++sampleRuns;
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
      setBusy(false);
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

  // ------------------------------------------------------------------ draw a digit, noise it, denoise it

  // The reader's drawing is kept as strokes, each a list of points [x, y] in the pad's own
  // pixels. The image the model sees is drawn again from them, the way MNIST's digits were made:
  // the ink's bounding box scaled so that its longer side fills 20 of 28 pixels, centred, and
  // (ddpm_core.data) padded to 32 x 32. So a small or off-centre drawing gives the same image as
  // a large, centred one, and its strokes are as thick as MNIST's.
  const MNIST_FRAME = 32;  // the sizes below are in pixels of this frame; other image sizes scale them
  const MNIST_BOX = 20;  // the digit's longer side, ink included
  const BRUSH = 2.8;  // the width of a stroke: as much ink as MNIST digits have, on average
  const FINE = 4;  // strokes are drawn 4 times finer, then averaged down: soft edges, as in MNIST
  const EDIT_ETA = 0, EDIT_WEIGHT = 1.5;  // deterministic DDIM, guided as the sampler's default

  let strokes = [];
  let imageOverride = null;  // the test hook's x_0 for the next press, instead of the drawing
  let lastEdit = null;
  let editRuns = 0;  // how many presses of "Noise and denoise" have run to the end

  function editSay(message) { edit.status.textContent = message; }
  function editComplain(message) {
    edit.error.textContent = message;
    edit.error.hidden = !message;
  }

  /** Where a pointer (mouse, finger or pen) is, in the pad's own pixels. */
  function padPoint(event) {
    const rect = edit.pad.getBoundingClientRect();
    return [(event.clientX - rect.left) * edit.pad.width / rect.width,
      (event.clientY - rect.top) * edit.pad.height / rect.height];
  }

  /** Stroke every stroke on a 2D context, after mapping each point through `to`. */
  function strokeAll(ctx, width, to) {
    ctx.lineWidth = width;
    ctx.lineCap = ctx.lineJoin = 'round';
    ctx.strokeStyle = ctx.fillStyle = '#fff';
    for (const stroke of strokes) {
      const points = stroke.map(to);
      ctx.beginPath();
      if (points.length === 1) {  // a dot
        ctx.arc(points[0][0], points[0][1], width / 2, 0, 2 * Math.PI);
        ctx.fill();
        continue;
      }
      ctx.moveTo(points[0][0], points[0][1]);
      for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
      ctx.stroke();
    }
  }

  /** The pad: white strokes on black, as the model's images are (1 is ink, -1 background). */
  function paintPad() {
    const ctx = edit.pad.getContext('2d');
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, edit.pad.width, edit.pad.height);
    // As thick as the model's strokes for a digit three quarters of the pad's height.
    const width = BRUSH * (0.75 * edit.pad.height) / (MNIST_BOX - BRUSH);
    strokeAll(ctx, width, (p) => p);
  }

  /**
   * The drawing as the model's x_0: `side` x `side` values in [-1, 1] per channel (-1 is the
   * background, 1 full ink), from the strokes as MNIST's digits were made; null if nothing is drawn.
   */
  function drawingToImage(side, channels) {
    const points = strokes.flat();
    if (points.length === 0) return null;
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const left = Math.min(...xs), right = Math.max(...xs), top = Math.min(...ys), bottom = Math.max(...ys);
    const unit = FINE * side / MNIST_FRAME;  // pixels of the fine canvas per pixel of the 32 x 32 frame
    // The strokes' centre lines fill MNIST_BOX - BRUSH, so that with the ink they fill MNIST_BOX.
    const scale = unit * (MNIST_BOX - BRUSH) / Math.max(right - left, bottom - top, 1);
    const middle = FINE * side / 2;
    const to = ([x, y]) => [middle + (x - (left + right) / 2) * scale, middle + (y - (top + bottom) / 2) * scale];
    const fine = document.createElement('canvas');
    fine.width = fine.height = FINE * side;
    const ctx = fine.getContext('2d');
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, fine.width, fine.height);
    strokeAll(ctx, BRUSH * unit, to);
    // Average each FINE x FINE block: the grey level g in [0, 1], then x = 2 g - 1.
    const red = ctx.getImageData(0, 0, fine.width, fine.height).data;
    const image = new Float32Array(channels * side * side);
    for (let row = 0; row < side; row++) {
      for (let col = 0; col < side; col++) {
        let sum = 0;
        for (let i = 0; i < FINE; i++) {
          for (let j = 0; j < FINE; j++) sum += red[4 * ((row * FINE + i) * fine.width + col * FINE + j)];
        }
        const x = 2 * sum / (255 * FINE * FINE) - 1;
        for (let c = 0; c < channels; c++) image[(c * side + row) * side + col] = x;
      }
    }
    return image;
  }

  /** One image (the first of a batch) on a canvas, or black where there is none. */
  function showImage(canvas, values) {
    const side = files().manifest.image_size;
    if (values) putGrey(canvas.getContext('2d'), toGrey(values, 0, side * side), side, 0, 0);
    else putGrey(canvas.getContext('2d'), new Uint8ClampedArray(side * side), side, 0, 0);
  }

  /** After each stroke, x_0: the drawing as the model will see it. */
  function showDrawing() {
    const manifest = files().manifest;
    showImage(edit.x0, drawingToImage(manifest.image_size, manifest.image_channels));
  }

  /** The denoising chain at the slider's position: x_t beside the x0_hat predicted from it. */
  function showEditChain() {
    const run = lastEdit;
    if (!run) { edit.chain.hidden = true; return; }
    edit.chain.hidden = false;
    const side = files().manifest.image_size;
    const k = Number(edit.slider.value), end = k === run.steps;
    const predicted = end ? run.x0s[k - 1] : run.x0s[k];  // after the last step: x_0 itself
    putGrey(edit.chainXt.getContext('2d'), run.xs[k].subarray(0, side * side), side, 0, 0);
    putGrey(edit.chainX0.getContext('2d'), predicted.subarray(0, side * side), side, 0, 0);
    edit.chainXtCaption.innerHTML = end ? X_0 : X_T;
    const label = chainLabel(run, k, 'the noised drawing');
    edit.label.innerHTML = `${label[0].toUpperCase()}${label.slice(1)}.`;
  }

  /**
   * "Noise and denoise": x_t from the drawing x_0 in one step, eq-forward-closed-form, then the
   * DDIM loop from t down to 0 over ddimTimesteps(t, steps) (SDEdit). The seed gives eps (and the
   * z of each step, multiplied by sigma = 0 since eta = 0).
   */
  async function noiseAndDenoise() {
    if (running) return;
    editComplain('');
    const manifest = files().manifest;
    let controls;
    try {
      controls = readEditControls(manifest.T);
    } catch (err) {
      editComplain(err.message);
      editSay('');
      return;
    }
    const x0 = imageOverride || drawingToImage(manifest.image_size, manifest.image_channels);
    if (!x0) {
      editComplain('Draw a digit in the box first: it is empty, so there is nothing to noise.');
      editSay('');
      return;
    }
    imageOverride = null;
    setBusy(true);
    edit.chain.hidden = true;
    try {
      const nets = await networks(editSay);
      const size = manifest.image_channels * manifest.image_size ** 2, count = x0.length / size;
      const noise = noiseOverride ? givenNoise(noiseOverride) : seededNormals(controls.seed);
      noiseOverride = null;
      const xt = qSample(manifest.alphas_cumprod, x0, controls.t, noise(x0.length));  // eq-forward-closed-form
      const timesteps = ddimTimesteps(controls.t, controls.steps);
      const run = {
        ...controls, count, plannedSteps: controls.steps, steps: 0, stopped: false, timesteps: timesteps.concat([0]),
        x0, xt, xs: [toGrey(xt, 0, xt.length)], x0s: [], samples: null,
      };
      showImage(edit.x0, x0);
      showImage(edit.xt, xt);
      showImage(edit.result, null);
      edit.xtCaption.innerHTML = `${X_T}, <i>t</i> = ${controls.t}`;
      edit.resultCaption.innerHTML = `${X0_HAT} after step 0 of ${controls.steps}`;
      const start = performance.now();
      const result = await ddimLoop(nets, xt, timesteps, {
        count, eta: EDIT_ETA, weight: EDIT_WEIGHT, noise,
        onStep: async ({k, t, x, x0: predicted}) => {
          run.x0s.push(toGrey(predicted, 0, predicted.length));
          run.xs.push(toGrey(x, 0, x.length));
          run.steps = k + 1;
          showImage(edit.result, predicted);
          edit.resultCaption.innerHTML = `${X0_HAT} after step ${k + 1} of ${controls.steps}`;
          editSay(`Step ${k + 1} of ${controls.steps} (t = ${t}).`);
          await new Promise((resolve) => setTimeout(resolve, 0));  // let the page draw
        },
      });
      run.samples = result.x;
      run.seconds = (performance.now() - start) / 1000;
      lastEdit = run;
      run.number = ++editRuns;
      showImage(edit.result, result.x);
      edit.resultCaption.innerHTML = `denoised ${X_0}`;
      editSay(`Noised to t = ${controls.t} and denoised in ${controls.steps} steps: `
        + `${2 * controls.steps} network calls in ${run.seconds.toFixed(1)} s.`);
      edit.slider.max = String(run.steps);
      edit.slider.value = String(run.steps);
      showEditChain();
    } catch (err) {
      editComplain(`Denoising failed: ${err.message}`);
      editSay('');
    } finally {
      setBusy(false);
    }
  }

  /**
   * Pointer events: mouse, finger and pen alike. The pad follows one pointer at a time, from press
   * to release; a finger draws instead of scrolling the page (touch-action: none, in the page's CSS).
   */
  function listenToPad() {
    let pointer = null;
    edit.pad.addEventListener('pointerdown', (event) => {
      if (pointer !== null) return;
      event.preventDefault();
      pointer = event.pointerId;
      edit.pad.setPointerCapture(pointer);
      strokes.push([padPoint(event)]);
      paintPad();
    });
    edit.pad.addEventListener('pointermove', (event) => {
      if (event.pointerId !== pointer) return;
      event.preventDefault();
      strokes[strokes.length - 1].push(padPoint(event));
      paintPad();
    });
    const end = (event) => {
      if (event.pointerId !== pointer) return;
      pointer = null;
      showDrawing();
    };
    edit.pad.addEventListener('pointerup', end);
    edit.pad.addEventListener('pointercancel', end);
  }

  if (edit) {
    const T = files().manifest.T;
    edit.form.elements.t.max = String(T);
    editRoot.querySelector('.ddpm-sampler-T').textContent = String(T);
    paintPad();
    showDrawing();
    showImage(edit.xt, null);
    showImage(edit.result, null);
    listenToPad();
    edit.clear.addEventListener('click', () => {
      strokes = [];
      paintPad();
      showDrawing();
      editComplain('');
    });
    edit.form.addEventListener('submit', (event) => { event.preventDefault(); noiseAndDenoise(); });
    edit.slider.addEventListener('input', showEditChain);
    edit.run.disabled = false;
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
    /**
     * The next press of Generate takes x_T and then each step's z from these arrays (each
     * count * 1024); or the next press of "Noise and denoise" takes eps, then each step's z.
     */
    useNoise: (arrays) => { noiseOverride = arrays.map((a) => Float32Array.from(a)); },
    /** The next press of "Noise and denoise" noises this x_0 (count * 1024 numbers in [-1, 1]), not the drawing. */
    useImage: (x0) => { imageOverride = Float32Array.from(x0); },
    /** The drawing as the model sees it (1024 numbers), or null where nothing is drawn. */
    drawing: () => {
      const image = drawingToImage(files().manifest.image_size, files().manifest.image_channels);
      return image && Array.from(image);
    },
    /** The last "Noise and denoise" (number: how many have run): its settings, x_0, x_t and the denoised x_0. */
    lastEdit: () => lastEdit && {
      number: lastEdit.number, t: lastEdit.t, steps: lastEdit.steps, seed: lastEdit.seed, count: lastEdit.count,
      timesteps: lastEdit.timesteps, seconds: lastEdit.seconds,
      x0: Array.from(lastEdit.x0), xt: Array.from(lastEdit.xt), samples: Array.from(lastEdit.samples),
    },
    /** Whether a run is going on. */
    running: () => running,
    /** The last finished (or stopped) run (number: how many have run): its settings, x_0 and timings. */
    lastRun: () => last && {
      number: last.number, seed: last.seed, steps: last.steps, plannedSteps: last.plannedSteps, eta: last.eta, weight: last.weight,
      count: last.count, stopped: last.stopped, seconds: last.seconds, calls: last.steps * (last.weight === 1 ? 1 : 2),
      loadSeconds: last.loadSeconds, bytes: last.bytes, samples: Array.from(last.samples),
    },
  };
})();
