"use strict";
/*
 * The program each local Node.js execution environment runs: AWS's Node.js runtime loop,
 * without AWS. The same contract as ../bootstrap.py (the Python one), so the runner treats both
 * alike: started as `node bootstrap.cjs REQUEST_FD RESPONSE_FD PATHS_JSON`, it loads the handler
 * named by _HANDLER from LAMBDA_TASK_ROOT, then answers invocations one at a time.
 *
 * Protocol (a private pipe pair, never stdout: stdout/stderr are the function's log): every
 * frame is a 4-byte big-endian length and a UTF-8 JSON document.
 *   child -> parent, once: {"type": "ready", "init_ms", "error"}
 *   parent -> child: {"type": "invoke", "request_id", "payload", "deadline_ms", "invoked_arn",
 *                     "trace_id"}
 *   child -> parent: {"type": "result", "request_id", "ok", "payload", "duration_ms",
 *                     "max_rss_kb"}
 * After each phase (init, then each request) a marker line closes the phase on stdout, so the
 * parent knows it holds every log line of the phase before it writes END and REPORT.
 *
 * What AWS's runtime interface client does and this does too: handler names `dir/file.a.b`,
 * CommonJS and ES modules, async and callback handlers (callbacks up to nodejs22.x), the context
 * object and context.succeed/fail/done, console lines as `time\trequestId\tLEVEL\tmessage`, and
 * its error names (Runtime.ImportModuleError, Runtime.HandlerNotFound, ...). Error payloads are
 * Node's: {"errorType", "errorMessage", "trace"}.
 *
 * Local-only: an https request to the local endpoint without a port (CloudFormation's
 * ResponseURL as the CDK's custom-resource handlers send it) goes to the endpoint over http.
 */

const fs = require("fs");
const http = require("http");
const https = require("https");
const path = require("path");
const util = require("util");
const { pathToFileURL } = require("url");

const MARKER = "\x1estreamline-phase-end ";
const REQUEST_FD = Number(process.argv[2]);
const RESPONSE_FD = Number(process.argv[3]);
const RUNTIME = process.env.AWS_EXECUTION_ENV || "";
const CALLBACKS_ALLOWED = !/nodejs(2[4-9]|[3-9]\d)\.x/.test(RUNTIME);

let currentRequestId = "";

// -- logging: the runtime's console format -----------------------------------------------------

function installConsole() {
  const write = (level) =>
    function (...args) {
      const line = util.format(...args).replace(/\n/g, "\r");
      fs.writeSync(1, `${new Date().toISOString()}\t${currentRequestId || "undefined"}\t${level}\t${line}\n`);
    };
  console.log = write("INFO");
  console.info = write("INFO");
  console.warn = write("WARN");
  console.error = write("ERROR");
  console.debug = write("DEBUG");
  console.trace = write("TRACE");
  console.fatal = write("FATAL");
}

function endPhase(token) {
  fs.writeSync(1, `${MARKER}${token}\n`);
}

// -- frames ------------------------------------------------------------------------------------

function send(document) {
  const body = Buffer.from(JSON.stringify(document), "utf8");
  const frame = Buffer.alloc(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  let offset = 0;
  while (offset < frame.length) {
    try {
      offset += fs.writeSync(RESPONSE_FD, frame, offset, frame.length - offset);
    } catch (err) {
      if (err.code !== "EAGAIN") throw err;
    }
  }
}

function readFrames(onFrame, onEnd) {
  const stream = fs.createReadStream(null, { fd: REQUEST_FD, autoClose: false, highWaterMark: 65536 });
  let pending = Buffer.alloc(0);
  stream.on("data", (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
      const size = pending.readUInt32BE(0);
      if (pending.length < 4 + size) break;
      const body = pending.subarray(4, 4 + size).toString("utf8");
      pending = pending.subarray(4 + size);
      onFrame(JSON.parse(body));
    }
  });
  stream.on("end", onEnd);
  stream.on("error", onEnd);
  return stream;
}

// -- errors ------------------------------------------------------------------------------------

class RuntimeFault extends Error {
  constructor(type, message) {
    super(message);
    this.name = type;
  }
}

function errorDocument(err) {
  if (err instanceof Error) {
    const stack = typeof err.stack === "string" ? err.stack.split("\n") : [];
    return { errorType: err.name || "Error", errorMessage: err.message, trace: stack };
  }
  // A thrown or rejected non-Error value, as the runtime reports it.
  let message;
  try {
    message = typeof err === "string" ? err : JSON.stringify(err);
  } catch (_) {
    message = String(err);
  }
  return { errorType: "Error", errorMessage: message === undefined ? "undefined" : message, trace: [] };
}

function logError(document, prefix) {
  const line = JSON.stringify({
    errorType: document.errorType,
    errorMessage: document.errorMessage,
    stack: document.trace,
  });
  fs.writeSync(1, `${new Date().toISOString()}\t${currentRequestId || "undefined"}\tERROR\t${prefix}\t${line}\n`);
}

// -- loading the handler -----------------------------------------------------------------------

function findModule(root, name) {
  for (const extension of [".js", ".mjs", ".cjs"]) {
    const file = path.resolve(root, name + extension);
    if (fs.existsSync(file)) return file;
  }
  const directory = path.resolve(root, name);
  if (fs.existsSync(path.join(directory, "index.js"))) return directory;
  return null;
}

function isEsm(file) {
  if (file.endsWith(".mjs")) return true;
  if (file.endsWith(".cjs")) return false;
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, "package.json");
    if (fs.existsSync(manifest)) {
      try {
        return JSON.parse(fs.readFileSync(manifest, "utf8")).type === "module";
      } catch (_) {
        return false;
      }
    }
    if (dir === path.dirname(dir)) return false;
  }
}

async function loadHandler(spec) {
  const taskRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const base = path.basename(spec);
  const moduleRoot = spec.substring(0, spec.length - base.length);
  const match = base.match(/^([^.]*)\.(.*)$/);
  if (!match || spec.includes("..")) {
    throw new RuntimeFault("Runtime.MalformedHandlerName", "Bad handler");
  }
  const [, moduleName, handlerPath] = match;
  const file = findModule(path.resolve(taskRoot, moduleRoot), moduleName);
  if (file === null) {
    throw new RuntimeFault(
      "Runtime.ImportModuleError",
      `Error: Cannot find module '${moduleName}'\nRequire stack:\n- ${__filename}`
    );
  }
  let loaded;
  try {
    if (isEsm(file)) {
      loaded = await import(pathToFileURL(file).href);
    } else {
      try {
        loaded = require(file);
      } catch (err) {
        if (err && err.code === "ERR_REQUIRE_ESM") loaded = await import(pathToFileURL(file).href);
        else throw err;
      }
    }
  } catch (err) {
    if (err instanceof SyntaxError) {
      throw new RuntimeFault("Runtime.UserCodeSyntaxError", `${err.name}: ${err.message}`);
    }
    if (err && err.code === "MODULE_NOT_FOUND") {
      throw new RuntimeFault("Runtime.ImportModuleError", `Error: ${err.message}`);
    }
    throw err;
  }
  let handler = loaded;
  for (const part of handlerPath.split(".")) {
    handler = handler === undefined || handler === null ? undefined : handler[part];
  }
  if (handler === undefined && loaded && loaded.default) {
    handler = loaded.default;
    for (const part of handlerPath.split(".")) handler = handler === undefined ? undefined : handler[part];
  }
  if (typeof handler !== "function") {
    throw new RuntimeFault(
      "Runtime.HandlerNotFound",
      `${moduleName}.${handlerPath} is undefined or not exported`
    );
  }
  return handler;
}

// -- invoking ----------------------------------------------------------------------------------

function peakRssKb() {
  try {
    const status = fs.readFileSync("/proc/self/status", "utf8");
    const found = status.match(/^VmHWM:\s+(\d+)/m);
    if (found) return Number(found[1]);
  } catch (_) {
    // fall through
  }
  return Math.round(process.resourceUsage().maxRSS);
}

function makeContext(request, settle) {
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: request.invoked_arn,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: request.request_id,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    identity: undefined,
    clientContext: undefined,
    getRemainingTimeInMillis: () => Math.max(0, request.deadline_ms - Date.now()),
    succeed: (result) => settle(null, result),
    fail: (err) => settle(err === undefined || err === null ? new Error("handled") : err),
    done: (err, result) => settle(err, result),
  };
  return context;
}

let failCurrent = null; // set while an invocation runs: uncaught errors end it

async function invoke(handler, request) {
  currentRequestId = request.request_id;
  if (request.trace_id) process.env._X_AMZN_TRACE_ID = request.trace_id;
  else delete process.env._X_AMZN_TRACE_ID;
  const started = process.hrtime.bigint();
  let outcome;
  try {
    let event;
    try {
      event = request.payload.trim() ? JSON.parse(request.payload) : {};
    } catch (err) {
      throw new RuntimeFault("Runtime.UnmarshalError", `Unable to unmarshal input: ${err.message}`);
    }
    const result = await new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err, value) => {
        if (settled) return;
        settled = true;
        if (err !== null && err !== undefined) reject(err);
        else resolve(value);
      };
      failCurrent = (err) => settle(err);
      const context = makeContext(request, settle);
      const args = [event, context];
      if (handler.length >= 3) {
        if (!CALLBACKS_ALLOWED) {
          settle(
            new RuntimeFault(
              "Runtime.CallbackHandlerDeprecated",
              "Callback-based function handlers are not supported in Node.js 24 and later: " +
                "use an async function handler."
            )
          );
          return;
        }
        args.push((err, value) => settle(err, value));
      }
      let returned;
      try {
        returned = handler(...args);
      } catch (err) {
        settle(err);
        return;
      }
      if (returned && typeof returned.then === "function") returned.then((v) => settle(null, v), settle);
      // A plain (non-async) handler without a callback: AWS's runtime ignores its return
      // value and answers null.
      else if (handler.length < 3) settle(null, null);
    });
    let payload;
    try {
      payload = JSON.stringify(result === undefined ? null : result);
    } catch (err) {
      throw new RuntimeFault("Runtime.MarshalError", `Unable to stringify response body: ${err.message}`);
    }
    outcome = { ok: true, payload };
  } catch (err) {
    const document = errorDocument(err);
    logError(document, "Invoke Error ");
    outcome = { ok: false, payload: JSON.stringify(document) };
  } finally {
    failCurrent = null;
  }
  const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
  return {
    type: "result",
    request_id: request.request_id,
    ok: outcome.ok,
    payload: outcome.payload,
    duration_ms: durationMs,
    max_rss_kb: peakRssKb(),
  };
}

// -- the local endpoint over http for CloudFormation responses ---------------------------------

function installResponseUrlShim() {
  const endpoint = process.env.AWS_ENDPOINT_URL ? new URL(process.env.AWS_ENDPOINT_URL) : null;
  if (!endpoint) return;
  const local = new Set(["localhost", "127.0.0.1", endpoint.hostname]);
  const original = https.request;
  const redirect = (options) => ({
    ...options,
    protocol: "http:",
    hostname: endpoint.hostname,
    host: undefined,
    port: endpoint.port,
    agent: undefined,
    headers: { ...(options.headers || {}), host: `${options.hostname || options.host}:${endpoint.port}` },
  });
  https.request = function request(target, ...rest) {
    if (typeof target === "string" || target instanceof URL) {
      const url = new URL(String(target));
      if (url.protocol === "http:") return http.request(url, ...rest);
      if (local.has(url.hostname) && !url.port) {
        return http.request(redirect({ hostname: url.hostname, path: url.pathname + url.search }), ...rest);
      }
    } else if (target && local.has(target.hostname || target.host) && !target.port) {
      return http.request(redirect(target), ...rest);
    }
    return original.call(this, target, ...rest);
  };
}

// -- main --------------------------------------------------------------------------------------

async function main() {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0); // the local cloud is gone
  }, 500).unref();
  installConsole();
  installResponseUrlShim();

  const started = process.hrtime.bigint();
  let handler = null;
  let error = null;
  try {
    handler = await loadHandler(process.env._HANDLER || "");
  } catch (err) {
    error = errorDocument(err);
  }
  const initMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (error !== null) logError(error, "Uncaught Exception ");
  endPhase("init");
  send({ type: "ready", init_ms: initMs, error });
  if (handler === null) process.exit(1);

  process.on("uncaughtException", (err) => {
    if (failCurrent) failCurrent(err);
    else logError(errorDocument(err), "Uncaught Exception ");
  });
  process.on("unhandledRejection", (reason) => {
    const err = new RuntimeFault(
      "Runtime.UnhandledPromiseRejection",
      reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason)
    );
    if (failCurrent) failCurrent(err);
    else logError(errorDocument(err), "Unhandled Promise Rejection");
  });

  let queue = Promise.resolve();
  const stream = readFrames(
    (request) => {
      queue = queue.then(async () => {
        const response = await invoke(handler, request);
        currentRequestId = "";
        endPhase(request.request_id);
        send(response);
      });
    },
    () => queue.then(() => process.exit(0)) // the parent closed the pipe: shut down quietly
  );
  stream.resume();
}

main().catch((err) => {
  fs.writeSync(2, `bootstrap failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
