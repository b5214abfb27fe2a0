// The package's public entry point, `import { Client, ClientError } from "vsr-node"`: the client
// library and its transport, nothing of the replica (importing it loads neither uWebSockets.js
// nor the data-file code). The simulator is the subpath "vsr-node/sim" (src/sim/vopr.ts).
// What is exported here is the package's API: keep it small, and keep its names stable.

export {
    Client,
    ClientError,
    type CallCallback,
    type CallOptions,
    type ClientErrorCode,
    type ClientOptions,
    type ClientStats,
    type ClientTuning,
    type Key,
    type Value,
} from "./client/client.js";
export {
    type ClientTransport,
    type FrameHandler,
    SharedTransport,
    WebSocketTransport,
    type WebSocketTransportOptions,
} from "./client/transport.js";
