/** Errors of the lower layers shown by a node, in the user's words. */

/**
 * The error with its text in the user's words, keeping its name (a Catch node's msg.error.message is
 * "<name>: <message>", as Node-RED writes an error).
 */
export function reworded(error: Error, text: string): Error {
  const worded = new Error(text);
  worded.name = error.name;
  return worded;
}
