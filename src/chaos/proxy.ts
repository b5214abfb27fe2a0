// Fault-injecting TCP proxies for `vsr chaos`: one per directed replica path i → j. The node bus
// has each replica dial every peer and send only on the link it dialed (src/io/bus.ts), so the
// path i → j is exactly the TCP connections replica i opens to replica j. Replica i is started
// with an --addresses list whose own entry is its real port and whose entry j is the proxy of
// i → j on 127.0.0.1; clients are given the real ports (they are never partitioned).
//
// Why a proxy rather than network namespaces: it needs no root, no iproute2 and no kernel
// support (CI containers often lack CAP_NET_ADMIN), it only ever touches 127.0.0.1, and leaving
// nothing behind is closing sockets. A cut path is a real cut: its open connections are
// destroyed (both sides see a reset or an end) and new ones are accepted and destroyed at once,
// so the dialer keeps failing and backing off until the path heals.
//
// Invariant: while cut, no byte is forwarded on the path (a connection is destroyed before any
// later data event of it is handled; new ones never get an upstream).

import net from "node:net";

export class PathProxy {
    readonly from: number;
    readonly to: number;
    readonly targetPort: number;
    private readonly server: net.Server;
    private readonly sockets = new Set<net.Socket>();
    private cutNow = false;
    port = 0;
    connections = 0;
    refused = 0;

    private constructor(from: number, to: number, targetPort: number) {
        this.from = from;
        this.to = to;
        this.targetPort = targetPort;
        this.server = net.createServer((socket) => this.onConnection(socket));
    }

    /** A proxy listening on a free port of 127.0.0.1, forwarding to 127.0.0.1:targetPort. */
    static async open(from: number, to: number, targetPort: number): Promise<PathProxy> {
        const proxy = new PathProxy(from, to, targetPort);
        await new Promise<void>((resolve, reject) => {
            proxy.server.once("error", reject);
            proxy.server.listen(0, "127.0.0.1", () => resolve());
        });
        const address = proxy.server.address();
        if (address === null || typeof address === "string") throw new Error("proxy has no port");
        proxy.port = address.port;
        return proxy;
    }

    get cut(): boolean {
        return this.cutNow;
    }

    /** Cuts (destroying every open connection) or heals the path. */
    setCut(cut: boolean): void {
        this.cutNow = cut;
        if (!cut) return;
        for (const socket of this.sockets) socket.destroy();
        this.sockets.clear();
    }

    private onConnection(downstream: net.Socket): void {
        if (this.cutNow) {
            this.refused++;
            downstream.destroy();
            return;
        }
        this.connections++;
        const upstream = net.connect({ host: "127.0.0.1", port: this.targetPort });
        downstream.setNoDelay(true);
        upstream.setNoDelay(true);
        this.sockets.add(downstream);
        this.sockets.add(upstream);
        const close = (): void => {
            downstream.destroy();
            upstream.destroy();
            this.sockets.delete(downstream);
            this.sockets.delete(upstream);
        };
        downstream.on("error", close);
        upstream.on("error", close);
        downstream.on("close", close);
        upstream.on("close", close);
        downstream.pipe(upstream);
        upstream.pipe(downstream);
    }

    /** Stops listening and destroys every connection. */
    async close(): Promise<void> {
        this.setCut(true);
        await new Promise<void>((resolve) => this.server.close(() => resolve()));
    }
}
