// Assertions: the spine of the code base. A broken invariant is a programmer error and crashes
// loudly; nothing in src/ catches it. No message is built on the success path (strings allocate),
// so callers pass no formatted text, only the condition.

export class AssertionError extends Error {
    override name = "AssertionError";
}

export function assert(condition: boolean): asserts condition {
    if (!condition) fail("assertion failed");
}

/** Documents that both outcomes are fine; evaluates nothing on purpose. */
export function maybe(_condition: boolean): void {}

export function unreachable(): never {
    return fail("unreachable code reached");
}

export function assertNever(value: never): never {
    return fail("unexpected value: " + String(value));
}

function fail(reason: string): never {
    throw new AssertionError(reason);
}
