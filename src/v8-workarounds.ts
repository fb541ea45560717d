import { setFlagsFromString } from "node:v8";

/**
 * V8 of Node 20 (11.3) and 22 (12.4) aborts the process ("Fatal error ...
 * unreachable code", exit 133) when optimized code that inlined a call into
 * WebAssembly returning a reference (`externref`) is deoptimized lazily while
 * that call runs: `Deoptimizer::TranslatedValueForWasmReturnKind` handles
 * numeric return kinds only. Automerge's wasm-bindgen exports return
 * `externref` (`getHeads`, `commit`, ...) and are called on every hot path of
 * the document store, so a node under load hits it at random (seen in
 * `bench:scale --only reconnect --stored 100000`). Not inlining those calls
 * avoids the frame the deoptimizer cannot build; the calls themselves stay
 * compiled. Set before any code is optimized: every entry point loads this
 * through `polyfills.ts` first.
 */
const AFFECTED_V8 = /^1[12]\./;

if (AFFECTED_V8.test(process.versions.v8)) setFlagsFromString("--no-turbo-inline-js-wasm-calls");
