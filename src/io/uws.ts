// The one place that loads uWebSockets.js (the npm alias of @trufflesuite/uws-js-unofficial).
// The package's entry (src/uws.js) requires the native binding for this platform and Node ABI,
// and when that fails (or UWS_USE_FALLBACK=1 is set) it prints a warning and silently returns a
// slow pure-JS server from its dist/ folder instead. A replica must never run on the fallback,
// so the load is checked two independent ways and both must say "native":
//   1. the module that the entry required (its `children` in the CommonJS cache) is a `.node`
//      binary, not dist/index.js;
//   2. `App` is a native function (`Function.prototype.toString` shows "[native code]").
// Invariant: loadUws() returns the package only when both hold; otherwise it throws an Error
// whose message names the cause, and the caller (the CLI) refuses to start.

import { createRequire } from "node:module";
import type * as Uws from "uWebSockets.js";

export type UwsModule = typeof Uws;

const require = createRequire(import.meta.url);
const packageName = "uWebSockets.js";

let uws: UwsModule | null = null;
let native = false;
/** Which module file the package's entry loaded (for the error message). */
let bindingFile = "";

function load(): UwsModule {
    if (uws !== null) return uws;
    const entryPath = require.resolve(packageName);
    const loaded = require(packageName) as UwsModule;
    const entry = require.cache[entryPath];
    bindingFile = "";
    if (entry !== undefined) {
        for (const child of entry.children) {
            if (child.filename.startsWith(entryPath)) continue;
            bindingFile = child.filename;
        }
    }
    const binaryLoaded = bindingFile.endsWith(".node");
    const appNative =
        typeof loaded.App === "function" &&
        Function.prototype.toString.call(loaded.App).includes("[native code]");
    native = binaryLoaded && appNative;
    uws = loaded;
    return loaded;
}

/** True only when uWebSockets.js runs on its native binding (not the pure-JS fallback). */
export function uwsNative(): boolean {
    load();
    return native;
}

/** The uWebSockets.js module; throws when only the pure-JS fallback could be loaded. */
export function loadUws(): UwsModule {
    const loaded = load();
    if (!native) {
        const which = bindingFile === "" ? "an unknown module" : bindingFile;
        throw new Error(
            `uWebSockets.js native binding not loaded (got ${which}; platform ` +
                `${process.platform}-${process.arch}, Node ABI ${process.versions.modules}` +
                `${process.env["UWS_USE_FALLBACK"] ? ", UWS_USE_FALLBACK is set" : ""}): ` +
                "refusing to run on the slow pure-JS fallback",
        );
    }
    return loaded;
}
