// The message pool: a fixed number of messageSizeMax buffers carved from the arena at start-up,
// reference-counted. The count is derived by arithmetic from the configuration by whoever owns
// the pool (the replica, or the simulated cluster for all its nodes and its network) and running
// out is a bug (assertion), never a reason to allocate. A message's header is zeroed when it is
// acquired, so no field of an earlier use can leak into a new message.

import { assert } from "../stdx/assert.js";
import type { Arena } from "./arena.js";
import { headerSize } from "../constants.js";

export class Message {
    /** Absolute byte offset of the message in the arena. */
    readonly offset: number;
    readonly index: number;
    references = 0;

    constructor(index: number, offset: number) {
        this.index = index;
        this.offset = offset;
    }
}

export class MessagePool {
    readonly arena: Arena;
    readonly messageSizeMax: number;
    readonly messagesMax: number;
    private readonly messages: Message[] = [];
    private readonly freeStack: Int32Array;
    private freeCount = 0;

    constructor(arena: Arena, messageSizeMax: number, messagesMax: number) {
        assert(messageSizeMax >= headerSize);
        assert(messageSizeMax % headerSize === 0);
        assert(messagesMax > 0);
        this.arena = arena;
        this.messageSizeMax = messageSizeMax;
        this.messagesMax = messagesMax;
        this.freeStack = new Int32Array(messagesMax);
        const base = arena.allocate(messageSizeMax * messagesMax, 4096);
        for (let index = 0; index < messagesMax; index++) {
            this.messages.push(new Message(index, base + index * messageSizeMax));
        }
        // Hand out low indices first: easier to read in a debugger, no other reason.
        for (let index = messagesMax - 1; index >= 0; index--)
            this.freeStack[this.freeCount++] = index;
    }

    static sizeBytes(messageSizeMax: number, messagesMax: number): number {
        return messageSizeMax * messagesMax + 4096;
    }

    get free(): number {
        return this.freeCount;
    }

    acquire(): Message {
        assert(this.freeCount > 0); // The pool is sized by arithmetic: exhaustion is a bug.
        const index = this.freeStack[--this.freeCount] ?? -1;
        const message = this.messages[index];
        assert(message !== undefined);
        assert(message.references === 0);
        message.references = 1;
        this.arena.bytes.fill(0, message.offset, message.offset + headerSize);
        return message;
    }

    ref(message: Message): Message {
        assert(message.references > 0);
        message.references++;
        return message;
    }

    unref(message: Message): void {
        assert(message.references > 0);
        assert(this.messages[message.index] === message);
        message.references--;
        if (message.references === 0) {
            assert(this.freeCount < this.messagesMax);
            this.freeStack[this.freeCount++] = message.index;
        }
    }

    /** True when the message belongs to this pool (for assertions at boundaries). */
    owns(message: Message): boolean {
        return this.messages[message.index] === message;
    }
}
