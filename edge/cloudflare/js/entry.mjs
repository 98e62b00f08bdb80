// The request plane's Worker: ASC's gateway. Everything is in Rust (src/request.rs) and the
// platform calls in host.js; the Durable Objects it calls live in the control plane's Worker
// (control.mjs), bound by `script_name`.
import * as asc from './pkg/asc.js';
import wasmModule from './index_bg.wasm';
import { start } from './boot.js';

export default start(asc, wasmModule).worker;
