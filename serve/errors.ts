/**
 * The one error type of the serve layer: an HTTP status and a one-line reason, which
 * is what the client gets as `{"error": reason}`.
 */
export class HttpError extends Error {
  constructor(
    readonly status: 400 | 404 | 405 | 413 | 503,
    message: string,
  ) {
    super(message.split('\n')[0]);
    this.name = 'HttpError';
  }
}

/** An error as the client sees it: an HttpError as it is, anything else (a backend failure) as 503 with its first line. */
export function asHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new HttpError(503, `the model could not answer: ${message.split('\n')[0]}`);
}
