// The few WebAssembly globals the project uses. Node 20 provides them at run time, but neither
// lib "es2022" nor @types/node 20 declares them, and lib "dom" would drag in browser globals
// (fetch, WebSocket) that Node 20 does not have.

declare namespace WebAssembly {
    interface MemoryDescriptor {
        initial: number;
        maximum?: number;
        shared?: boolean;
    }
    class Memory {
        constructor(descriptor: MemoryDescriptor);
        readonly buffer: ArrayBuffer;
        grow(delta: number): number;
    }
    class Module {
        constructor(bytes: Uint8Array);
    }
    type ImportValue = Memory | ((...args: never[]) => unknown) | number;
    type Imports = Record<string, Record<string, ImportValue>>;
    class Instance {
        constructor(module: Module, imports?: Imports);
        readonly exports: Record<string, unknown>;
    }
    function validate(bytes: Uint8Array): boolean;
}
