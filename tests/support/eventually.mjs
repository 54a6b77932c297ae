// Polling with a deadline, for the Node test scripts (never a sleep as synchronisation): calls
// `check` every 10 ms until it returns something truthy, which it returns; throws naming `what`
// once `ms` have passed.
export async function eventually(what, check, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
