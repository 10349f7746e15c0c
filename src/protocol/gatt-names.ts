/**
 * Names of GATT services, characteristics and descriptors for the explorer, and the `format` it suggests. Pure code.
 * The 16-bit names are the Bluetooth SIG's assigned numbers (services 0x18xx, characteristics 0x2Axx, descriptors
 * 0x29xx: the ranges do not overlap, so one table serves all three); the Nordic UART Service is the one vendor
 * service named, for its console use (src/protocol/nus.ts).
 */
import { NUS_RX, NUS_SERVICE, NUS_TX } from "./nus";
import { hasSigDecoder } from "./sig-decoders";
import type { ReadFormat } from "./gatt-value";
import { normalizeUuid } from "./uuid";

const SERVICES: Readonly<Record<string, string>> = {
  "1800": "Generic Access",
  "1801": "Generic Attribute",
  "1802": "Immediate Alert",
  "1803": "Link Loss",
  "1804": "Tx Power",
  "1805": "Current Time",
  "1806": "Reference Time Update",
  "1807": "Next DST Change",
  "1808": "Glucose",
  "1809": "Health Thermometer",
  "180a": "Device Information",
  "180d": "Heart Rate",
  "180e": "Phone Alert Status",
  "180f": "Battery",
  "1810": "Blood Pressure",
  "1811": "Alert Notification",
  "1812": "Human Interface Device",
  "1813": "Scan Parameters",
  "1814": "Running Speed and Cadence",
  "1815": "Automation IO",
  "1816": "Cycling Speed and Cadence",
  "1818": "Cycling Power",
  "1819": "Location and Navigation",
  "181a": "Environmental Sensing",
  "181b": "Body Composition",
  "181c": "User Data",
  "181d": "Weight Scale",
  "181e": "Bond Management",
  "181f": "Continuous Glucose Monitoring",
  "1820": "Internet Protocol Support",
  "1821": "Indoor Positioning",
  "1822": "Pulse Oximeter",
  "1823": "HTTP Proxy",
  "1824": "Transport Discovery",
  "1825": "Object Transfer",
  "1826": "Fitness Machine",
};

const CHARACTERISTICS: Readonly<Record<string, string>> = {
  "2a00": "Device Name",
  "2a01": "Appearance",
  "2a02": "Peripheral Privacy Flag",
  "2a03": "Reconnection Address",
  "2a04": "Peripheral Preferred Connection Parameters",
  "2a05": "Service Changed",
  "2a06": "Alert Level",
  "2a07": "Tx Power Level",
  "2a08": "Date Time",
  "2a09": "Day of Week",
  "2a0a": "Day Date Time",
  "2a0c": "Exact Time 256",
  "2a0d": "DST Offset",
  "2a0e": "Time Zone",
  "2a0f": "Local Time Information",
  "2a11": "Time with DST",
  "2a12": "Time Accuracy",
  "2a13": "Time Source",
  "2a14": "Reference Time Information",
  "2a16": "Time Update Control Point",
  "2a17": "Time Update State",
  "2a18": "Glucose Measurement",
  "2a19": "Battery Level",
  "2a1c": "Temperature Measurement",
  "2a1d": "Temperature Type",
  "2a1e": "Intermediate Temperature",
  "2a21": "Measurement Interval",
  "2a23": "System ID",
  "2a24": "Model Number String",
  "2a25": "Serial Number String",
  "2a26": "Firmware Revision String",
  "2a27": "Hardware Revision String",
  "2a28": "Software Revision String",
  "2a29": "Manufacturer Name String",
  "2a2a": "IEEE 11073-20601 Regulatory Certification Data List",
  "2a2b": "Current Time",
  "2a31": "Scan Refresh",
  "2a34": "Glucose Measurement Context",
  "2a35": "Blood Pressure Measurement",
  "2a36": "Intermediate Cuff Pressure",
  "2a37": "Heart Rate Measurement",
  "2a38": "Body Sensor Location",
  "2a39": "Heart Rate Control Point",
  "2a46": "New Alert",
  "2a49": "Blood Pressure Feature",
  "2a4a": "HID Information",
  "2a4b": "Report Map",
  "2a4c": "HID Control Point",
  "2a4d": "Report",
  "2a4e": "Protocol Mode",
  "2a4f": "Scan Interval Window",
  "2a50": "PnP ID",
  "2a51": "Glucose Feature",
  "2a52": "Record Access Control Point",
  "2a53": "RSC Measurement",
  "2a54": "RSC Feature",
  "2a55": "SC Control Point",
  "2a5b": "CSC Measurement",
  "2a5c": "CSC Feature",
  "2a5d": "Sensor Location",
  "2a5e": "PLX Spot-Check Measurement",
  "2a5f": "PLX Continuous Measurement",
  "2a60": "PLX Features",
  "2a63": "Cycling Power Measurement",
  "2a64": "Cycling Power Vector",
  "2a65": "Cycling Power Feature",
  "2a66": "Cycling Power Control Point",
  "2a67": "Location and Speed",
  "2a68": "Navigation",
  "2a6c": "Elevation",
  "2a6d": "Pressure",
  "2a6e": "Temperature",
  "2a6f": "Humidity",
  "2a70": "True Wind Speed",
  "2a71": "True Wind Direction",
  "2a72": "Apparent Wind Speed",
  "2a73": "Apparent Wind Direction",
  "2a74": "Gust Factor",
  "2a75": "Pollen Concentration",
  "2a76": "UV Index",
  "2a77": "Irradiance",
  "2a78": "Rainfall",
  "2a79": "Wind Chill",
  "2a7a": "Heat Index",
  "2a7b": "Dew Point",
  "2a98": "Weight",
  "2a9b": "Body Composition Feature",
  "2a9c": "Body Composition Measurement",
  "2a9d": "Weight Measurement",
  "2a9e": "Weight Scale Feature",
  "2a9f": "User Control Point",
};

const DESCRIPTORS: Readonly<Record<string, string>> = {
  "2900": "Characteristic Extended Properties",
  "2901": "Characteristic User Description",
  "2902": "Client Characteristic Configuration",
  "2903": "Server Characteristic Configuration",
  "2904": "Characteristic Presentation Format",
  "2905": "Characteristic Aggregate Format",
  "2906": "Valid Range",
  "2907": "External Report Reference",
  "2908": "Report Reference",
  "290b": "Environmental Sensing Configuration",
  "290c": "Environmental Sensing Measurement",
  "290d": "Environmental Sensing Trigger Setting",
};

const VENDOR: Readonly<Record<string, string>> = {
  [normalizeUuid(NUS_SERVICE)]: "Nordic UART Service",
  [normalizeUuid(NUS_RX)]: "Nordic UART RX",
  [normalizeUuid(NUS_TX)]: "Nordic UART TX",
};

const own = (table: Readonly<Record<string, string>>, key: string): string | null =>
  Object.prototype.hasOwnProperty.call(table, key) ? table[key] : null;

function canonical(uuid: string): string | null {
  if (typeof uuid !== "string") return null;
  try {
    return normalizeUuid(uuid);
  } catch {
    return null;
  }
}

/** The name of a service, characteristic or descriptor (any UUID spelling), or null when unknown or not a UUID. */
export function gattName(uuid: string): string | null {
  const c = canonical(uuid);
  if (c === null) return null;
  return own(SERVICES, c) ?? own(CHARACTERISTICS, c) ?? own(DESCRIPTORS, c) ?? own(VENDOR, c);
}

/** Device Name and the Device Information strings: UTF-8 text by definition. */
const TEXT_CHARACTERISTICS: ReadonlySet<string> = new Set(["2a00", "2a24", "2a25", "2a26", "2a27", "2a28", "2a29"]);

/**
 * The read `format` the explorer suggests for a characteristic with these properties (noble's names: "read",
 * "notify", "indicate", …): "sig" when a SIG decoder exists, "utf8" for the Device Name and Device Information
 * strings, "buffer" otherwise: for any other characteristic, for one that can be neither read, notified nor indicated
 * (a read format means nothing for it), and for anything that is not a UUID.
 */
export function suggestedFormat(characteristic: string, properties: readonly string[]): ReadFormat {
  const c = canonical(characteristic);
  if (c === null) return "buffer";
  const readable = Array.isArray(properties) && properties.some((p) => p === "read" || p === "notify" || p === "indicate");
  if (!readable) return "buffer";
  if (hasSigDecoder(c)) return "sig";
  if (TEXT_CHARACTERISTICS.has(c)) return "utf8";
  return "buffer";
}
