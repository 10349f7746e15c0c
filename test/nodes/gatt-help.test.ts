/**
 * The generic GATT nodes' help (nodes/locales/en-US/ble-gatt-*.html): what a user finds in the editor's help tab
 * about the dialog's buttons that fill it in, Explore and the Nordic UART preset.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

const NODES = ["ble-gatt-in", "ble-gatt-out", "ble-gatt-request"];

function help(type: string): string {
  return fs.readFileSync(path.join(__dirname, "..", "..", "nodes", "locales", "en-US", `${type}.html`), "utf8");
}

describe("generic GATT nodes' help", () => {
  for (const type of NODES) {
    it(`${type}: explains the Explore button and the Nordic UART preset`, () => {
      const text = help(type);
      assert.match(text, new RegExp(`data-help-name="${type}"`));
      assert.match(text, /<b>Explore<\/b>/, "the Explore button");
      assert.match(text, /<b>Nordic UART<\/b>/, "the Nordic UART preset");
    });
  }

  it("ble-gatt-request: documents the values of Reply format, sig included", () => {
    const text = help("ble-gatt-request");
    const paragraph = /<p><b>Reply format<\/b>[\s\S]*?<\/p>/.exec(text);
    assert.ok(paragraph, "a paragraph on Reply format");
    for (const format of ["buffer", "utf8", "hex", "uint16le", "sig"]) assert.match(paragraph[0], new RegExp(`<code>${format}</code>`), format);
  });
});
