/**
 * How many copies JetStream keeps of every bucket and stream DCNR creates:
 * env `DCNR_REPLICAS` (1, 3 or 5; default 1). Use 3 on a 3-node NATS cluster so a
 * dead NATS node loses nothing. Read here only, so every creator agrees.
 */
export function replicas(): number {
  const raw = (process.env.DCNR_REPLICAS ?? '').trim();
  if (raw === '') return 1;
  const n = Number(raw);
  if (n !== 1 && n !== 3 && n !== 5) throw new Error(`DCNR_REPLICAS must be 1, 3 or 5, got ${JSON.stringify(raw)}`);
  return n;
}
