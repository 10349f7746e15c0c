/**
 * What the BLE layer reports to a user, as a reason code with parameters: never a sentence. The node layer words
 * it through the ble-config message catalog (`ble-config.problem.<key>`), so every text can be translated.
 */
export interface BleProblem {
  readonly key: string;
  readonly params: Readonly<Record<string, string | number>>;
}

/** An Error that carries a BleProblem, for the places where the BLE layer throws or rejects. */
export class BleProblemError extends Error {
  constructor(readonly problem: BleProblem) {
    super(`${problem.key} ${JSON.stringify(problem.params)}`);
    this.name = "BleProblemError";
  }
}

/**
 * Any failure as a problem: a BleProblemError's own; anything else (an error of noble or of the operating system)
 * is `failed`, with the error's message as `detail`, the only text that comes from outside the catalogs.
 */
export function problemOf(error: unknown): BleProblem {
  if (error instanceof BleProblemError) return error.problem;
  return { key: "failed", params: { detail: error instanceof Error ? error.message : String(error) } };
}
