import { strict as assert } from "node:assert";
import * as path from "node:path";
import fc from "fast-check";
import { AnnouncedNameError, announcedFileName, FALLBACK_FILE_NAME, MAX_FILE_NAME_BYTES, numberedFileName, resolveInside, sanitizeFileName } from "../../src/protocol/file-name";

const bytes = (s: string): number => Buffer.byteLength(s, "utf8");

/** Names a hostile device might announce, on top of fast-check's arbitrary strings. */
const hostile = fc.oneof(
  fc.string({ unit: "binary", maxLength: 400 }),
  fc.string({ unit: "grapheme", maxLength: 300 }),
  fc
    .array(fc.constantFrom("..", ".", "/", "\\", "\u0000", "\u202e", "C:", "con", "a", "é", "😀", " ", "\n", "~", ".fit", "x".repeat(60)), { maxLength: 40 })
    .map((parts) => parts.join("")),
);

describe("sanitizeFileName", () => {
  it("neutralises the classic attacks", () => {
    assert.equal(sanitizeFileName("../../etc/passwd"), "etc_passwd");
    assert.equal(sanitizeFileName("/abs/path"), "abs_path");
    assert.equal(sanitizeFileName("..\\..\\Windows\\win.ini"), "Windows_win.ini");
    assert.equal(sanitizeFileName("a\u0000b"), "a_b");
    assert.equal(sanitizeFileName("line\nbreak\r.txt"), "line_break_.txt");
    assert.equal(sanitizeFileName("C:\\boot.ini"), "C__boot.ini");
    assert.equal(sanitizeFileName("file.txt:stream"), "file.txt_stream");
    assert.equal(sanitizeFileName("evil\u202etxt.exe"), "evil_txt.exe");
  });

  it("turns reserved and empty names into something usable", () => {
    for (const name of ["", ".", "..", "...", "/", "//", "\\", "./..", " ", " . ", "\u0000"]) {
      const safe = sanitizeFileName(name);
      assert.ok(safe === FALLBACK_FILE_NAME || /^_+$/.test(safe), `${JSON.stringify(name)} → ${JSON.stringify(safe)}`);
    }
    assert.equal(sanitizeFileName(".."), FALLBACK_FILE_NAME);
    assert.equal(sanitizeFileName(".bashrc"), "bashrc");
    assert.equal(sanitizeFileName("trailing. . "), "trailing");
    assert.equal(sanitizeFileName("CON"), "_CON");
    assert.equal(sanitizeFileName("nul.txt"), "_nul.txt");
    assert.equal(sanitizeFileName("com1.fit"), "_com1.fit");
    assert.equal(sanitizeFileName("console.log"), "console.log");
  });

  it("prefixes every Windows device name, also with trailing spaces before the extension and the $ names", () => {
    for (const [name, safe] of [
      ["CON .txt", "_CON .txt"],
      ["con  .log", "_con  .log"],
      ["CON ", "_CON"],
      ["CONIN$", "_CONIN$"],
      ["conout$.txt", "_conout$.txt"],
      ["CONOUT$ .dat", "_CONOUT$ .dat"],
      ["CLOCK$", "_CLOCK$"],
      ["AUX .tar.gz", "_AUX .tar.gz"],
      ["LPT¹ .fit", "_LPT¹ .fit"],
      ["com0", "_com0"],
    ]) {
      assert.equal(sanitizeFileName(name), safe, JSON.stringify(name));
    }
    for (const name of ["CONIN", "con$", "conin$x", "CON x.txt", "console$", "COM10"]) assert.equal(sanitizeFileName(name), name, `${JSON.stringify(name)} is no device`);
  });

  it("never returns a name Windows takes for a device (property)", () => {
    // Independent of the sanitiser: Windows looks at the name up to its first dot, without trailing spaces.
    const devices = new Set(["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$", ...[..."0123456789¹²³"].flatMap((d) => [`COM${d}`, `LPT${d}`])]);
    const isDevice = (name: string): boolean => devices.has(name.split(".")[0].replace(/ +$/, "").toUpperCase());
    const device = fc
      .tuple(fc.constantFrom(...devices), fc.constantFrom("", " ", "  ", "$"), fc.constantFrom("", ".txt", " .txt", "..x", ".a.b", " "))
      .map(([d, pad, ext]) => `${[...d].map((ch, i) => (i % 2 ? ch.toLowerCase() : ch)).join("")}${pad}${ext}`);
    fc.assert(
      fc.property(fc.oneof(device, hostile), (remote) => {
        const safe = sanitizeFileName(remote);
        assert.ok(!isDevice(safe), `${JSON.stringify(remote)} → ${JSON.stringify(safe)} is a Windows device`);
        assert.equal(sanitizeFileName(safe), safe, "idempotent");
      }),
      { numRuns: 3000 },
    );
  });

  it("keeps ordinary names as they are", () => {
    for (const name of ["test.bin", "20240101123456.fit", "filelist.txt", "Setting.json", "my file (2).tar.gz", "données-été.csv", "日本語.txt"]) {
      assert.equal(sanitizeFileName(name), name);
    }
  });

  it("caps long names at 200 UTF-8 bytes, keeping a short extension and whole characters", () => {
    const long = sanitizeFileName(`${"a".repeat(300)}.fit`);
    assert.equal(bytes(long), MAX_FILE_NAME_BYTES);
    assert.ok(long.endsWith(".fit"));
    const emoji = sanitizeFileName("😀".repeat(100));
    assert.ok(bytes(emoji) <= MAX_FILE_NAME_BYTES);
    assert.equal(emoji, "😀".repeat(50));
    const longExt = sanitizeFileName(`name.${"x".repeat(300)}`);
    assert.ok(bytes(longExt) <= MAX_FILE_NAME_BYTES);
    assert.ok(longExt.startsWith("name."));
  });

  it("any input gives a single safe path component that stays inside the directory (property)", () => {
    const dir = path.resolve("/srv/downloads");
    fc.assert(
      fc.property(hostile, (remote) => {
        const safe = sanitizeFileName(remote);
        assert.ok(safe.length > 0);
        assert.ok(bytes(safe) <= MAX_FILE_NAME_BYTES, `${bytes(safe)} bytes`);
        assert.ok(!/[/\\]/.test(safe), "no separator");
        assert.ok(!/\p{Cc}/u.test(safe), "no control character");
        assert.ok(!/[<>:"|?*]/.test(safe), "no Windows-reserved character");
        assert.ok(safe !== "." && safe !== "..");
        assert.ok(!safe.startsWith(".") && !safe.endsWith(".") && !safe.endsWith(" "));
        assert.equal(Buffer.from(safe, "utf8").toString("utf8"), safe, "valid UTF-8 round trip");
        assert.equal(path.dirname(path.join(dir, safe)), dir);
        assert.equal(path.win32.dirname(path.win32.join("C:\\dl", safe)), "C:\\dl");
        assert.equal(resolveInside(dir, safe), path.join(dir, safe));
        assert.equal(sanitizeFileName(safe), safe, "idempotent");
      }),
      { numRuns: 2000 },
    );
  });

  it("respects a smaller cap", () => {
    fc.assert(
      fc.property(hostile, fc.integer({ min: 9, max: 64 }), (remote, cap) => {
        const safe = sanitizeFileName(remote, cap);
        assert.ok(safe.length > 0 && bytes(safe) <= cap);
      }),
    );
    assert.throws(() => sanitizeFileName("x", 3), RangeError);
  });
});

describe("numberedFileName", () => {
  it("numbers before the extension", () => {
    assert.equal(numberedFileName("a.txt", 0), "a.txt");
    assert.equal(numberedFileName("a.txt", 1), "a (1).txt");
    assert.equal(numberedFileName("archive.tar.gz", 2), "archive.tar (2).gz");
    assert.equal(numberedFileName("README", 3), "README (3)");
    assert.equal(numberedFileName("name.", 1), "name. (1)");
    assert.throws(() => numberedFileName("a", -1), RangeError);
  });

  it("keeps a sanitised name safe (property)", () => {
    fc.assert(
      fc.property(hostile, fc.integer({ min: 0, max: 9999 }), (remote, n) => {
        const name = numberedFileName(sanitizeFileName(remote), n);
        assert.equal(sanitizeFileName(name, 255), name);
      }),
    );
  });
});

describe("resolveInside", () => {
  it("refuses anything that is not a direct child of the directory", () => {
    const dir = path.resolve("/srv/downloads");
    assert.equal(resolveInside(dir, "a.txt"), path.join(dir, "a.txt"));
    for (const bad of ["../x", "/etc/passwd", "sub/x", "..", ".", ""]) {
      assert.throws(() => resolveInside(dir, bad), /refusing/, bad);
    }
    assert.throws(() => resolveInside("C:\\dl", "..\\x", path.win32), /refusing/);
    assert.throws(() => resolveInside("C:\\dl", "D:x", path.win32), /refusing/);
  });
});

describe("announcedFileName (the name a sender puts in block 0)", () => {
  const refused = (name: string, key: string): void => {
    assert.throws(
      () => announcedFileName(name),
      (e: unknown) => e instanceof AnnouncedNameError && e.key === key && !e.message.includes(name.slice(0, 8) || "\u0000"),
      JSON.stringify(name),
    );
  };

  it("keeps the last path component, POSIX or Windows, and nothing else", () => {
    assert.equal(announcedFileName("/data/files/config.json"), "config.json");
    assert.equal(announcedFileName("C:\\Users\\me\\main.py"), "main.py");
    assert.equal(announcedFileName("dir/sub/"), "sub");
    assert.equal(announcedFileName("log (1).bin"), "log (1).bin");
    assert.equal(announcedFileName("é".repeat(100)), "é".repeat(100), "200 UTF-8 bytes is the limit, not 200 characters");
  });

  it("refuses instead of changing: no name, control or invisible formatting characters, lone surrogates, too long", () => {
    for (const name of ["", "/", ".", "..", "dir/..", "   "]) refused(name, "empty");
    for (const name of ["a\u0000b", "line\nbreak", "evil\u202Etxt.exe", "x\u2028y", "half\uD800"]) refused(name, "unprintable");
    refused("é".repeat(100) + "x", "too-long");
    assert.deepEqual((() => {
      try {
        announcedFileName("n".repeat(300));
      } catch (e) {
        return (e as AnnouncedNameError).params;
      }
      return null;
    })(), { bytes: 300, max: MAX_FILE_NAME_BYTES });
  });
});
