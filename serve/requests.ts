/**
 * Reading and validating request bodies: every failure is an HttpError with one line
 * that says what is wrong and what is expected. Nothing a client sends can throw
 * anything else (DESIGN.md invariant 5, for HTTP).
 */
import type { IncomingMessage } from 'node:http';
import type { TextDataset } from '../runtime/data/text.js';
import { encodePrompt } from '../trainer/generate.js';
import { HttpError } from './errors.js';

/** A request body may be at most this many bytes (4 MiB): 64 rows of 784 pixels written with 17 digits each fit four times. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
/** A prompt may be at most this many characters (the longest line a text dataset may hold). */
export const MAX_PROMPT_CHARS = 256;
/** `maxTokens` may be at most this. */
export const DEFAULT_MAX_TOKENS_LIMIT = 256;

/** The body, read as a stream, refused with 413 past `limit` bytes (by its Content-Length at once). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > limit) return reject(new HttpError(413, `the body is ${declared} bytes; at most ${limit} are accepted`));
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.off('data', onData);
        reject(new HttpError(413, `the body is over ${limit} bytes`));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', (err) => reject(new HttpError(400, `the body could not be read: ${err.message}`)));
    // a client that hangs up mid-body: no 'end' will come (after 'end', this rejects nothing)
    req.on('close', () => reject(new HttpError(400, 'the client closed the connection before the body ended')));
  });
}

/** The body as a JSON object with only the `allowed` fields. */
export function parseObject(body: Buffer, allowed: readonly string[]): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `the body is not JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, `the body must be a JSON object with ${allowed.join(', ')}`);
  for (const k of Object.keys(value)) {
    if (!allowed.includes(k)) throw new HttpError(400, `unknown field ${JSON.stringify(k)}; the fields are ${allowed.join(', ')}`);
  }
  return value as Record<string, unknown>;
}

const what = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v) : typeof v === 'object' ? 'an object' : String(v));

/** `POST /v1/predict`'s `{inputs}`: 1..maxRows rows of exactly `features` finite float32 numbers, as one row-major array. */
export function parsePredict(body: Buffer, features: number, maxRows: number): { x: Float32Array; rows: number } {
  const { inputs } = parseObject(body, ['inputs']);
  if (!Array.isArray(inputs)) throw new HttpError(400, `inputs must be an array of rows (arrays of ${features} numbers), got ${what(inputs)}`);
  if (inputs.length < 1 || inputs.length > maxRows) throw new HttpError(400, `inputs has ${inputs.length} rows; 1 to ${maxRows} are accepted`);
  const x = new Float32Array(inputs.length * features);
  inputs.forEach((row: unknown, r) => {
    if (!Array.isArray(row)) throw new HttpError(400, `inputs[${r}] must be an array of ${features} numbers, got ${what(row)}`);
    if (row.length !== features) throw new HttpError(400, `inputs[${r}] has ${row.length} values; the model takes ${features}`);
    for (let c = 0; c < features; c++) {
      const v: unknown = row[c];
      if (typeof v !== 'number') throw new HttpError(400, `inputs[${r}][${c}] must be a number, got ${what(v)}`);
      const f = Math.fround(v);
      if (!Number.isFinite(f)) throw new HttpError(400, `inputs[${r}][${c}] = ${v} is not a finite float32`);
      x[r * features + c] = f;
    }
  });
  return { x, rows: inputs.length };
}

export interface GenerateRequest {
  /** Token ids of the prompt. */
  prompt: number[];
  maxTokens: number;
  temperature: number;
  seed: number;
}

/**
 * `POST /v1/generate`'s `{prompt, maxTokens, temperature, seed}`, all optional: prompt
 * '' (characters of the vocabulary, not the boundary, at most 256), maxTokens
 * `defaultMaxTokens` (1..`maxTokensLimit`), temperature 1 ([0, 10]), seed `defaultSeed()`
 * (an integer in [0, 2^53)).
 */
export function parseGenerate(body: Buffer, data: TextDataset, o: { defaultMaxTokens: number; maxTokensLimit: number; defaultSeed: () => number }): GenerateRequest {
  const b = parseObject(body, ['prompt', 'maxTokens', 'temperature', 'seed']);
  const prompt = b.prompt ?? '';
  if (typeof prompt !== 'string') throw new HttpError(400, `prompt must be a string, got ${what(prompt)}`);
  const chars = [...prompt].length;
  if (chars > MAX_PROMPT_CHARS) throw new HttpError(400, `prompt has ${chars} characters; at most ${MAX_PROMPT_CHARS} are accepted`);
  let ids: number[];
  try {
    ids = encodePrompt(data, prompt);
  } catch (err) {
    throw new HttpError(400, `prompt: ${(err as Error).message}`);
  }
  const maxTokens = b.maxTokens ?? Math.min(o.defaultMaxTokens, o.maxTokensLimit);
  if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > o.maxTokensLimit) {
    throw new HttpError(400, `maxTokens must be an integer from 1 to ${o.maxTokensLimit}, got ${what(maxTokens)}`);
  }
  const temperature = b.temperature ?? 1;
  if (typeof temperature !== 'number' || !(temperature >= 0 && temperature <= 10)) throw new HttpError(400, `temperature must be a number in [0, 10], got ${what(temperature)}`);
  const seed = b.seed ?? o.defaultSeed();
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) throw new HttpError(400, `seed must be an integer from 0 to 2^53 - 1, got ${what(seed)}`);
  return { prompt: ids, maxTokens, temperature, seed };
}
