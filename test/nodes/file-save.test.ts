/** Saving received files (src/red/file-save.ts) on the real file system, without Node-RED. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { removeTemps, saveDirectory, saveFile } from "../../src/red/file-save";

describe("file-save: received files never overwrite one already there", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-file-save-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("resolves the directory as Node-RED's file nodes do: absolute as it is, relative against fileWorkingDirectory, else the working directory", () => {
    assert.equal(saveDirectory("/data/in", "/srv/red"), "/data/in");
    assert.equal(saveDirectory("in", "/srv/red"), "/srv/red/in");
    assert.equal(saveDirectory("in", undefined), path.resolve("in"));
    assert.equal(saveDirectory("in", ""), path.resolve("in"));
  });

  it("numbers a name that is taken, keeps every file's bytes, and leaves no temporary file behind", async () => {
    const temps = new Set<string>();
    fs.writeFileSync(path.join(dir, "log.txt"), "mine");
    const first = await saveFile(path.join(dir, "sub"), "log.txt", Buffer.from("one"), temps);
    const second = await saveFile(path.join(dir, "sub"), "log.txt", Buffer.from("two"), temps);
    const third = await saveFile(dir, "log.txt", Buffer.from("three"), temps);
    assert.equal(first, path.join(dir, "sub", "log.txt"));
    assert.equal(second, path.join(dir, "sub", "log (1).txt"));
    assert.equal(third, path.join(dir, "log (1).txt"));
    assert.equal(fs.readFileSync(path.join(dir, "log.txt"), "utf8"), "mine", "an existing file is never replaced");
    assert.deepEqual([first, second, third].map((f) => fs.readFileSync(f, "utf8")), ["one", "two", "three"]);
    assert.equal(temps.size, 0);
    assert.deepEqual(fs.readdirSync(path.join(dir, "sub")).sort(), ["log (1).txt", "log.txt"]);
  });

  it("saves a hostile remote name inside the directory, sanitised", async () => {
    const saved = await saveFile(dir, "../../etc/passwd", Buffer.from("x"), new Set());
    assert.equal(path.dirname(saved), dir);
  });

  it("removeTemps removes the temporary files of saves a closing node interrupted", async () => {
    const temp = path.join(dir, ".nus-ymodem-abc.part");
    fs.writeFileSync(temp, "partial");
    const temps = new Set([temp, path.join(dir, "gone.part")]);
    await removeTemps(temps);
    assert.equal(fs.existsSync(temp), false);
    assert.equal(temps.size, 0);
  });
});
