import assert from "node:assert/strict";
import {
  AdvertisementError,
  bindKeyLookup,
  decodeAdvertisement,
  parseBindKeys,
  ReplayGuard,
  type AdvertisementData,
} from "../../src/protocol/advertisement";

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");

const IBEACON = hex("4c00 0215 b5b182c7eab14988aa99b5c1517008d9 0102 fffe c6");
const EDDYSTONE_URL = Buffer.concat([hex("10 12 03"), Buffer.from("goo.gl/S6zT6P")]);
const BTHOME = hex("40 02C409 03BF13");
// https://bthome.io/encryption: the specification's encrypted example (see bthome.test.ts for the breakdown).
const SPEC_ENCRYPTED = hex("41 e445f3c9962b 33221100 6c7c4519");
const SPEC_KEYS = "54:48:E6:8F:80:A5 = 231d39c1d7cc1ab1aee224cd096db932";

const ad = (fields: Partial<AdvertisementData>): AdvertisementData => ({ address: "c0:ff:ee:00:00:01", serviceData: [], ...fields });

describe("decodeAdvertisement", () => {
  it("iBeacon from manufacturer data", () => {
    assert.deepEqual(decodeAdvertisement(ad({ manufacturerData: IBEACON })), {
      type: "ibeacon",
      uuid: "b5b182c7-eab1-4988-aa99-b5c1517008d9",
      major: 258,
      minor: 65534,
      measuredPower: -58,
    });
  });

  it("Eddystone from service data feaa, in every spelling of the UUID noble or a scenario uses", () => {
    for (const uuid of ["feaa", "FEAA", "0000feaa-0000-1000-8000-00805f9b34fb", "0000FEAA00001000800000805F9B34FB"]) {
      assert.deepEqual(decodeAdvertisement(ad({ serviceData: [{ uuid, data: EDDYSTONE_URL }] })), {
        type: "eddystone-url",
        url: "https://goo.gl/S6zT6P",
        txPower: 18,
      });
    }
  });

  it("BTHome from service data fcd2", () => {
    assert.deepEqual(decodeAdvertisement(ad({ serviceData: [{ uuid: "fcd2", data: BTHOME }] })), {
      type: "bthome",
      encrypted: false,
      triggerBased: false,
      temperature: 25,
      humidity: 50.55,
    });
  });

  it("BTHome wins over Eddystone, Eddystone over iBeacon; a refused Eddystone frame leaves the iBeacon", () => {
    const all = ad({
      manufacturerData: IBEACON,
      serviceData: [
        { uuid: "feaa", data: EDDYSTONE_URL },
        { uuid: "fcd2", data: BTHOME },
      ],
    });
    assert.equal(decodeAdvertisement(all)?.type, "bthome");
    assert.equal(decodeAdvertisement(ad({ manufacturerData: IBEACON, serviceData: [{ uuid: "feaa", data: EDDYSTONE_URL }] }))?.type, "eddystone-url");
    const refusedUrl = Buffer.concat([hex("10 12 03"), Buffer.from([0xff])]);
    assert.equal(decodeAdvertisement(ad({ manufacturerData: IBEACON, serviceData: [{ uuid: "feaa", data: refusedUrl }] }))?.type, "ibeacon");
  });

  it("null for everything else: other manufacturers, other services, nothing at all", () => {
    assert.equal(decodeAdvertisement(ad({})), null);
    assert.equal(decodeAdvertisement(ad({ manufacturerData: hex("5900 0102") })), null);
    assert.equal(decodeAdvertisement(ad({ serviceData: [{ uuid: "180f", data: hex("64") }] })), null);
    assert.equal(decodeAdvertisement(ad({ serviceData: [{ uuid: "feaa", data: hex("30 00") }] })), null);
  });

  it("decrypts the specification's encrypted example with a key from a bind-key list, whatever the address case", () => {
    const keys = bindKeyLookup(parseBindKeys(SPEC_KEYS));
    for (const address of ["54:48:E6:8F:80:A5", "54:48:e6:8f:80:a5"]) {
      const decoded = decodeAdvertisement({ address, serviceData: [{ uuid: "fcd2", data: SPEC_ENCRYPTED }] }, keys);
      assert.deepEqual(decoded, { type: "bthome", encrypted: true, triggerBased: false, temperature: 25.06, humidity: 50.55 });
    }
  });

  it("the repeat of an encrypted advertisement is AdvertisementError bthome-replay (the node drops it silently)", () => {
    const keys = bindKeyLookup(parseBindKeys(SPEC_KEYS));
    const guard = new ReplayGuard();
    const advertisement = { address: "54:48:E6:8F:80:A5", serviceData: [{ uuid: "fcd2", data: SPEC_ENCRYPTED }] };
    assert.equal(decodeAdvertisement(advertisement, keys, guard)?.type, "bthome");
    assert.throws(
      () => decodeAdvertisement(advertisement, keys, guard),
      (error: unknown) => error instanceof AdvertisementError && error.code === "bthome-replay" && error.params.address === "54:48:e6:8f:80:a5",
    );
  });

  it("an encrypted advertisement without a key: AdvertisementError bthome-no-key naming the device", () => {
    assert.throws(
      () => decodeAdvertisement({ address: "54:48:E6:8F:80:A5", serviceData: [{ uuid: "fcd2", data: SPEC_ENCRYPTED }] }),
      (error: unknown) => error instanceof AdvertisementError && error.code === "bthome-no-key" && error.params.address === "54:48:e6:8f:80:a5",
    );
  });
});
