/**
 * Every error konductor raises on purpose carries a stable code (KDR_...) and a human message.
 * The catalogue lives in the modules that raise them; this is the shared shape.
 */
export class KonductorError extends Error {
  readonly code: string;
  readonly statusCode: number;
  constructor(code: string, message: string, statusCode = 500, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KonductorError';
    this.code = code;
    this.statusCode = statusCode;
  }
}

export function isKonductorError(err: unknown): err is KonductorError {
  return err instanceof KonductorError;
}
