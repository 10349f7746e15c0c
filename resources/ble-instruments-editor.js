/*
 * Editor code shared by this package's nodes (the Scan and Explore buttons, the address field and its validation,
 * the transports of the runtime's platform). Node-RED serves the package's resources/ folder at
 * resources/<module name>/; each node's html loads this file with a <script src> tag, which the editor runs before
 * that html's own scripts, so BleInstrumentsEditor is defined whatever order the node files load in.
 */
/* global window, RED, $ -- the editor's page: this file runs in the browser, beside Node-RED's editor and jQuery */
window.BleInstrumentsEditor = (function () {
  var ADDRESS = /^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$|^[0-9A-Fa-f]{12}$/;
  var SCAN_SECONDS = 4;
  /** Time the runtime gets to find, connect to and read a device for Explore (src/red/admin.ts EXPLORE_SECONDS). */
  var EXPLORE_SECONDS = 15;

  /** The platform Node-RED runs on (not the browser's): the ble-config node exports it as a setting. */
  function platform() {
    return (RED.settings && RED.settings.bleConfigPlatform) || "linux";
  }

  /** The transports the runtime's platform has: BlueZ and the HCI socket on Linux, noble's native bindings on macOS and Windows. */
  function transportAvailable(transport) {
    var p = platform();
    var nativeBluetooth = p === "darwin" || p === "win32";
    if (transport === "native") return nativeBluetooth;
    if (transport === "bluez" || transport === "hci") return p === "linux";
    return true;
  }

  /**
   * A new adapter is the platform's own Bluetooth, never the simulator: readings must be real unless chosen
   * otherwise. The runtime decides (defaultTransport in src/ble/adapter.ts); the ble-config node exports its choice.
   */
  function defaultTransport() {
    return (RED.settings && RED.settings.bleConfigDefaultTransport) || "bluez";
  }

  function t(key, substitutions) {
    var def = RED.nodes.getType("ble-config");
    return def && def._ ? def._("ble-config." + key, substitutions) : key;
  }

  /**
   * A failed request to the package's admin endpoints in the user's words: the runtime answers an error as a
   * ble-config catalog key with its parameters ({ error: { key, params } }); without one, the HTTP status.
   */
  function errorText(xhr, status) {
    var error = xhr && xhr.responseJSON && xhr.responseJSON.error;
    if (error && typeof error.key === "string") return t(error.key, error.params || {});
    return xhr && xhr.status ? xhr.status + " " + xhr.statusText : String(status || "error");
  }

  function wholeNumber(min, max, blankAllowed) {
    return function (v, opt) {
      if ((v === "" || v === undefined || v === null) && blankAllowed) return true;
      var s = String(v).trim();
      // Node-RED substitutes ${ENV_VAR} in any property when the flow starts.
      if (/^\$\{[^}]+\}$/.test(s)) return true;
      var n = Number(s);
      if (s !== "" && Number.isInteger(n) && n >= min && n <= max) return true;
      return opt ? t("validation.range", { min: min, max: max }) : false;
    };
  }

  /**
   * Validator of the address typed input (types "str" and "env"): empty, a Bluetooth address, or for "env" the
   * name of an environment variable. The type is read from the dialog while it is open, else from the node.
   */
  function validateAddress(v, opt) {
    var field = $("#node-input-addressType");
    var type = (field.length && field.val()) || this.addressType || "str";
    var s = v === undefined || v === null ? "" : String(v).trim();
    if (type === "env") return s !== "" || (opt ? t("validation.env") : false);
    if (s === "" || ADDRESS.test(s) || /^\$\{[^}]+\}$/.test(s)) return true;
    return opt ? t("validation.address") : false;
  }

  /** What a node's label shows of the device it is bound to. */
  /**
   * The value environment variable `name` has for `node` where the editor knows it: set as text by the nearest
   * of its groups, then its flow or subflow. null when it is set otherwise (from another variable, JSONata …).
   */
  function envValue(node, name) {
    var scopes = [];
    for (var g = node.g && RED.nodes.group(node.g); g; g = g.g && RED.nodes.group(g.g)) scopes.push(g);
    var flow = node.z && (RED.nodes.workspace(node.z) || RED.nodes.subflow(node.z));
    if (flow) scopes.push(flow);
    for (var i = 0; i < scopes.length; i++) {
      var entries = Array.isArray(scopes[i].env) ? scopes[i].env : [];
      for (var j = 0; j < entries.length; j++) {
        if (entries[j].name === name) return entries[j].type === "str" && entries[j].value ? String(entries[j].value) : null;
      }
    }
    return null;
  }

  /** The device address a node is labelled by: an environment variable's value where the editor knows it. */
  function addressLabel(node) {
    if (!node.address) return "";
    var match = /^\$\{(\w+)\}$/.exec(node.address);
    var name = node.addressType === "env" ? node.address : match && match[1];
    if (!name) return node.address;
    return envValue(node, name) || "${" + name + "}";
  }

  /**
   * Query of a scan on the adapter of config node `id`. The runtime scans on that node's adapter when it is
   * deployed; a node that is new or edited since the last deploy is described by its settings instead.
   */
  function scanQuery(id, filter, withSettings) {
    var query = { config: id, seconds: SCAN_SECONDS };
    var cfg = RED.nodes.node(id);
    if (cfg && (withSettings || cfg.changed)) {
      query.transport = cfg.transport || defaultTransport();
      query.bluezAdapter = cfg.bluezAdapter || "";
      query.hciDevice = cfg.hciDevice;
      query.uartPort = cfg.uartPort || "";
      query.uartBaudRate = cfg.uartBaudRate;
      query.uartFlowControl = cfg.uartFlowControl !== false;
      query.simScenario = cfg.simScenario || "";
    }
    if (filter.service) query.service = [].concat(filter.service).join(",");
    if (filter.namePrefix) query.namePrefix = [].concat(filter.namePrefix).join(",");
    return query;
  }

  function describeServices(services) {
    var known = { "180d": "Heart Rate", "1812": "HID", "180f": "Battery", "180a": "Device Information", "6e400001b5a3f393e0a9e50e24dcca9e": "Nordic UART" };
    return services
      .map(function (s) {
        return known[s] ? known[s] + " (" + (s.length > 4 ? "6e400001-…" : s) + ")" : s;
      })
      .join(", ");
  }

  /**
   * Adds a Scan button beside the address input of a device node's dialog and, below it, the list of devices
   * found (name, address, RSSI, advertised services); a click on one fills the address and name fields.
   * options.filter: { service: uuid or [uuid], namePrefix: prefix or [prefix] } — what the node can talk to.
   */
  function addScan(options) {
    var address = $("#node-input-address");
    var nameInput = $("#node-input-deviceName");
    var row = address.closest(".form-row");
    var button = $('<button type="button" class="red-ui-button ble-scan-button" style="margin-left: 4px;"></button>')
      .append('<i class="fa fa-search"></i> ')
      .append($("<span>").text(t("scan.button")))
      .attr("title", t("scan.tooltip"));
    row.append(button);
    var panel = $('<div class="form-row ble-scan-panel" style="display: none;"><label>&nbsp;</label></div>').insertAfter(row);
    var body = $('<div style="display: inline-block; width: 70%; vertical-align: top;"></div>').appendTo(panel);
    var line = $('<div class="ble-scan-status" style="margin-bottom: 4px;"></div>').appendTo(body);
    var list = $(
      '<ol class="ble-scan-list" style="list-style: none; margin: 0; padding: 0; max-height: 180px; overflow-y: auto;' +
        ' border: 1px solid var(--red-ui-form-input-border-color, #ccc); border-radius: 4px;"></ol>',
    )
      .hide()
      .appendTo(body);
    var request = null;

    function showLine(kind, text) {
      line.empty().removeClass("ble-scan-error");
      if (kind === "busy") line.append('<i class="fa fa-spinner fa-spin"></i> ');
      if (kind === "error") {
        line.addClass("ble-scan-error").css("color", "var(--red-ui-text-color-error, #d6615f)");
        line.append('<i class="fa fa-exclamation-triangle"></i> ');
      } else {
        line.css("color", "");
      }
      line.append($("<span>").text(text));
    }

    function pick(device, item) {
      list.children().removeClass("selected").css("background", "");
      item.addClass("selected").css("background", "var(--red-ui-list-item-background-selected, #ffebc7)");
      address.typedInput("type", "str");
      address.typedInput("value", device.address);
      if (device.name) nameInput.val(device.name).trigger("change");
      showLine("info", t("scan.picked", { name: device.name || device.address }));
    }

    function show(devices) {
      list.empty();
      if (devices.length === 0) {
        list.hide();
        showLine("info", t("scan.none"));
        return;
      }
      showLine("info", t("scan.found", { count: devices.length }));
      devices.forEach(function (device) {
        var item = $('<li class="ble-scan-device" tabindex="0" style="padding: 4px 8px; cursor: pointer; border-bottom: 1px solid var(--red-ui-secondary-border-color, #eee);"></li>');
        item.attr("data-address", device.address);
        $('<div style="display: flex; justify-content: space-between; gap: 8px;"></div>')
          .append($('<span class="ble-scan-name" style="font-weight: bold; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;"></span>').text(device.name || t("scan.unnamed")))
          .append($('<span class="ble-scan-rssi" style="white-space: nowrap;"></span>').text(device.rssi + " dBm"))
          .appendTo(item);
        $('<div style="font-size: 0.9em; color: var(--red-ui-secondary-text-color, #888);"></div>')
          .append($('<code class="ble-scan-address"></code>').text(device.address))
          .append($("<span>").text(" " + device.addressType + (device.services.length ? " · " + describeServices(device.services) : "")))
          .appendTo(item);
        item.on("click", function () {
          pick(device, item);
        });
        item.on("keydown", function (event) {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            pick(device, item);
          }
        });
        list.append(item);
      });
      list.show();
    }

    function run(id, withSettings) {
      var cfg = RED.nodes.node(id);
      request = $.ajax({
        url: "ble-instruments/scan",
        data: scanQuery(id, options.filter, withSettings),
        dataType: "json",
        timeout: (SCAN_SECONDS + 20) * 1000,
      });
      request.then(
        function (devices) {
          request = null;
          button.prop("disabled", false);
          show(devices);
        },
        function (xhr, status) {
          request = null;
          if (status === "abort") return;
          // A config node the runtime does not know although the editor thinks it deployed (a deploy that failed).
          if (xhr.status === 404 && !withSettings && cfg) {
            run(id, true);
            return;
          }
          button.prop("disabled", false);
          showLine("error", t("scan.failed", { error: errorText(xhr, status) }));
        },
      );
    }

    button.on("click", function () {
      var id = $("#node-input-ble").val();
      panel.show();
      list.hide();
      if (!id || id === "_ADD_" || !RED.nodes.node(id)) {
        showLine("error", t("scan.no-adapter"));
        return;
      }
      button.prop("disabled", true);
      showLine("busy", t("scan.scanning", { adapter: RED.utils.getNodeLabel(RED.nodes.node(id), id), seconds: SCAN_SECONDS }));
      run(id, false);
    });

    return {
      /** Stops waiting for a scan whose dialog is closing. */
      close: function () {
        if (request) request.abort();
      },
    };
  }

  /**
   * Adds an Explore button to a GATT node's dialog: in its `.ble-explore-row` if it has one, else beside the address
   * input. Enabled once the dialog names a device (an address, typed or picked with Scan, or an exact name), it asks
   * the runtime for the device's table (src/red/admin.ts, GET ble-instruments/explore) and lists every service and
   * characteristic with its properties, SIG name and suggested format; a click on a characteristic fills the dialog's
   * service, characteristic and (where the node has one) mode fields, and closes the list.
   */
  function addExplore() {
    var address = $("#node-input-address");
    var nameInput = $("#node-input-deviceName");
    var button = $('<button type="button" class="red-ui-button ble-explore-button" style="margin-left: 4px;"></button>')
      .append('<i class="fa fa-sitemap"></i> ')
      .append($("<span>").text(t("explore.button")))
      .attr("title", t("explore.tooltip"));
    var row = $(".ble-explore-row").first();
    if (row.length) {
      row.empty().append("<label>&nbsp;</label>").append(button.css("margin-left", "0"));
    } else {
      row = address.closest(".form-row");
      row.append(button);
    }
    var panel = $('<div class="form-row ble-explore-panel" style="display: none;"><label>&nbsp;</label></div>').insertAfter(row);
    var body = $('<div style="display: inline-block; width: 70%; vertical-align: top;"></div>').appendTo(panel);
    var line = $('<div class="ble-explore-status" style="margin-bottom: 4px;"></div>').appendTo(body);
    var list = $(
      '<ol class="ble-explore-list" style="list-style: none; margin: 0; padding: 0; max-height: 240px; overflow-y: auto;' +
        ' border: 1px solid var(--red-ui-form-input-border-color, #ccc); border-radius: 4px;"></ol>',
    )
      .hide()
      .appendTo(body);
    var request = null;

    /** The device the dialog names: { address } when the address field holds one, else { name }, else null. */
    function device() {
      var type = $("#node-input-addressType").val() || "str";
      var a = String(address.val() || "").trim();
      if (type === "str" && ADDRESS.test(a)) return { address: a };
      var name = String(nameInput.val() || "").trim();
      return name ? { name: name } : null;
    }

    function update() {
      button.prop("disabled", request !== null || device() === null);
    }

    function showLine(kind, text) {
      line.empty().removeClass("ble-explore-error");
      if (kind === "busy") line.append('<i class="fa fa-spinner fa-spin"></i> ');
      if (kind === "error") {
        line.addClass("ble-explore-error").css("color", "var(--red-ui-text-color-error, #d6615f)");
        line.append('<i class="fa fa-exclamation-triangle"></i> ');
      } else {
        line.css("color", "");
      }
      line.append($("<span>").text(text));
    }

    /** "Battery Level (2a19)", or the UUID alone where the SIG has no name for it. */
    function named(entry) {
      return entry.name ? entry.name + " (" + entry.uuid + ")" : entry.uuid;
    }

    function pick(service, characteristic) {
      $("#node-input-service").val(service.uuid).trigger("change");
      $("#node-input-characteristic").val(characteristic.uuid).trigger("change");
      var mode = $("#node-input-mode");
      if (mode.length && mode.find('option[value="' + characteristic.suggestedMode + '"]').length) mode.val(characteristic.suggestedMode).trigger("change");
      list.hide().empty();
      showLine("info", t("explore.picked", { characteristic: named(characteristic), service: named(service) }));
    }

    function show(table) {
      list.empty();
      if (!table.services.length) {
        list.hide();
        showLine("info", t("explore.none"));
        return;
      }
      showLine("info", t("explore.found", { count: table.services.length }));
      table.services.forEach(function (service) {
        $('<li class="ble-explore-service" style="padding: 4px 8px; font-weight: bold; background: var(--red-ui-secondary-background, #f3f3f3);"></li>')
          .attr("data-uuid", service.uuid)
          .append($('<span class="ble-explore-name"></span>').text(named(service)))
          .appendTo(list);
        service.characteristics.forEach(function (characteristic) {
          var item = $('<li class="ble-explore-characteristic" tabindex="0" style="padding: 4px 8px 4px 20px; cursor: pointer; border-bottom: 1px solid var(--red-ui-secondary-border-color, #eee);"></li>');
          item.attr("data-service", service.uuid).attr("data-uuid", characteristic.uuid);
          $('<div class="ble-explore-name"></div>').text(named(characteristic)).appendTo(item);
          $('<div style="font-size: 0.9em; color: var(--red-ui-secondary-text-color, #888);"></div>')
            .append($('<span class="ble-explore-properties"></span>').text(characteristic.properties.join(", ")))
            .append($('<span class="ble-explore-format"></span>').text(" · " + t("explore.suggested", { format: characteristic.suggestedFormat })))
            .appendTo(item);
          item.on("click", function () {
            pick(service, characteristic);
          });
          item.on("keydown", function (event) {
            if (event.key === "Enter" || event.key === " ") {
              event.preventDefault();
              // The pick removes this item: the editor's own key handler (on window) must not see an event whose
              // target has left the page.
              event.stopPropagation();
              pick(service, characteristic);
            }
          });
          list.append(item);
        });
      });
      list.show();
    }

    function run(id, target, withSettings) {
      var cfg = RED.nodes.node(id);
      var query = scanQuery(id, {}, withSettings);
      query.seconds = EXPLORE_SECONDS;
      if (target.address) query.address = target.address;
      else query.name = target.name;
      request = $.ajax({ url: "ble-instruments/explore", data: query, dataType: "json", timeout: (EXPLORE_SECONDS + 20) * 1000 });
      request.then(
        function (table) {
          request = null;
          update();
          show(table);
        },
        function (xhr, status) {
          request = null;
          if (status === "abort") return;
          if (xhr.status === 404 && !withSettings && cfg) {
            run(id, target, true);
            return;
          }
          update();
          showLine("error", t("explore.failed", { error: errorText(xhr, status) }));
        },
      );
      update();
    }

    button.on("click", function () {
      var id = $("#node-input-ble").val();
      var target = device();
      panel.show();
      list.hide();
      if (!id || id === "_ADD_" || !RED.nodes.node(id)) {
        showLine("error", t("scan.no-adapter"));
        return;
      }
      if (!target) {
        showLine("error", t("explore.no-device"));
        return;
      }
      showLine("busy", t("explore.exploring", { device: target.address || target.name, adapter: RED.utils.getNodeLabel(RED.nodes.node(id), id) }));
      run(id, target, false);
    });
    address.on("change input", update);
    nameInput.on("change input", update);
    update();

    return {
      /** Stops waiting for an explore whose dialog is closing. */
      close: function () {
        if (request) request.abort();
      },
    };
  }

  /** Turns the address input into a typed input: an address, or an environment variable holding one. */
  function addressInput() {
    $("#node-input-address").typedInput({ default: "str", types: ["str", "env"], typeField: "#node-input-addressType" });
  }

  /*
   * The generic GATT nodes (ble-gatt-in, ble-gatt-out, ble-gatt-request): their UUID fields, format choices and the
   * Nordic UART Service preset.
   */
  var NUS = {
    service: "6e400001-b5a3-f393-e0a9-e50e24dcca9e",
    /** RX: the device receives what is written to it. */
    rx: "6e400002-b5a3-f393-e0a9-e50e24dcca9e",
    /** TX: the device sends by notification. */
    tx: "6e400003-b5a3-f393-e0a9-e50e24dcca9e",
  };
  var NUMERIC_FORMATS = ["uint8", "int8", "uint16le", "int16le", "uint32le", "int32le", "float32le", "uint16be", "int16be", "uint32be", "int32be", "float32be"];

  /** Validator of a UUID field, as the runtime reads it (normalizeUuid): 180f, 0x2A19, 32-bit, 128-bit with or without dashes. */
  function validateUuid(v, opt) {
    var s = v === undefined || v === null ? "" : String(v).trim().toLowerCase();
    if (/^\$\{[^}]+\}$/.test(s)) return true;
    if (s.indexOf("0x") === 0) s = s.slice(2);
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(s)) s = s.replace(/-/g, "");
    if (/^[0-9a-f]+$/.test(s) && (s.length === 4 || s.length === 8 || s.length === 32)) return true;
    return opt ? t("validation.uuid") : false;
  }

  /**
   * Whether a delimiter reads as the runtime reads it (src/protocol/stream-split.ts parseDelimiter): "0x" and whole
   * bytes in hex (spaces and colons between them allowed), or text whose backslashes start \n, \r, \t, \0, \\ or
   * \xHH. Empty is valid (the node's default: \n for gatt in, none for gatt request).
   */
  function delimiterReadable(v) {
    var s = v === undefined || v === null ? "" : String(v);
    if (s === "" || /^\$\{[^}]+\}$/.test(s)) return true;
    if (/^0[xX]/.test(s)) {
      var digits = s.slice(2).replace(/[\s:]/g, "");
      return digits.length > 0 && digits.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(digits);
    }
    for (var i = 0; i < s.length; i++) {
      if (s[i] !== "\\") continue;
      var e = s[i + 1];
      if (e === "n" || e === "r" || e === "t" || e === "0" || e === "\\") i += 1;
      else if (e === "x" && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) i += 3;
      else return false;
    }
    return true;
  }

  /**
   * Validator of a `delimiter` field; `used(node)` says whether the node's settings use it (ble-gatt-in: only with
   * split at a delimiter), called with the node as `this`, as Node-RED calls validators.
   */
  function validateDelimiter(used) {
    return function (v, opt) {
      if (used && !used(this)) return true;
      if (delimiterReadable(v)) return true;
      return opt ? t("validation.delimiter") : false;
    };
  }

  /** The characteristics format `sig` decodes (src/protocol/sig-decoders.ts SIG_CHARACTERISTICS, checked by a test). */
  var SIG_CHARACTERISTICS = ["2a19", "2a6e", "2a6f", "2a6d", "2a37", "2a1c", "2a35", "2a9d", "2a5b", "2a63"];
  var BASE_UUID_TAIL = "00001000800000805f9b34fb";

  /** A UUID in the runtime's canonical form (src/protocol/uuid.ts normalizeUuid), or null when it reads as none. */
  function canonicalUuid(v) {
    var s = v === undefined || v === null ? "" : String(v).trim().toLowerCase();
    if (s.indexOf("0x") === 0) s = s.slice(2);
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(s)) s = s.replace(/-/g, "");
    if (!/^[0-9a-f]+$/.test(s) || (s.length !== 4 && s.length !== 8 && s.length !== 32)) return null;
    if (s.length === 8) s = s + BASE_UUID_TAIL;
    if (s.length === 32 && s.indexOf("0000") === 0 && s.slice(8) === BASE_UUID_TAIL) return s.slice(4, 8);
    return s;
  }

  /**
   * Validator of a `format` field: `sig` only for a characteristic the runtime has a SIG decoder for.
   * `characteristicOf(node)` names the characteristic whose values are decoded; one that is no UUID (its own field
   * is marked) or an environment variable is not judged here.
   */
  function validateSigFormat(characteristicOf) {
    return function (v, opt) {
      if (v !== "sig") return true;
      var c = canonicalUuid(characteristicOf(this));
      if (c === null || SIG_CHARACTERISTICS.indexOf(c) >= 0) return true;
      return opt ? t("validation.sig") : false;
    };
  }

  /**
   * `validator` applied only while `used(node)` holds (the node as Node-RED passes it to validators, as `this`): a
   * setting the runtime does not read in the node's other settings, and whose row the dialog hides, cannot make it
   * invalid.
   */
  function validateWhen(used, validator) {
    return function (v, opt) {
      return used(this) ? validator.call(this, v, opt) : true;
    };
  }

  /** The node's connection policy is `idle` (its idle time is read only then). */
  function idleConnection(node) {
    return node.connection === "idle";
  }

  /** Fills the select `#node-input-<id>` with the formats of a value read ("read") or written ("write"), keeping `value`. */
  function formatOptions(id, kind, value) {
    var labels = { buffer: t("gatt.format-buffer"), utf8: t("gatt.format-utf8"), hex: t("gatt.format-hex"), sig: t("gatt.format-sig"), auto: t("gatt.format-auto") };
    var formats = kind === "write" ? ["auto", "utf8", "hex"].concat(NUMERIC_FORMATS) : ["buffer", "utf8", "hex"].concat(NUMERIC_FORMATS, ["sig"]);
    var select = $("#node-input-" + id).empty();
    formats.forEach(function (f) {
      $("<option>").val(f).text(labels[f] || f).appendTo(select);
    });
    select.val(value || formats[0]);
  }

  /**
   * Adds a "Nordic UART" button to the service row: a click fills the NUS service and `fields` (the id of a
   * `#node-input-<id>` field → its value; true/false for a checkbox), e.g. { characteristic: NUS.tx, split: "delimiter" }.
   */
  function addNusPreset(fields) {
    var row = $("#node-input-service").closest(".form-row");
    var button = $('<button type="button" class="red-ui-button ble-nus-preset" style="margin-left: 4px;"></button>')
      .append('<i class="fa fa-terminal"></i> ')
      .append($("<span>").text(t("gatt.nus-preset")))
      .attr("title", t("gatt.nus-tooltip"));
    row.append(button);
    button.on("click", function () {
      $("#node-input-service").val(NUS.service).trigger("change");
      Object.keys(fields).forEach(function (id) {
        var input = $("#node-input-" + id);
        if (input.is(":checkbox")) input.prop("checked", fields[id] === true).trigger("change");
        else input.val(fields[id]).trigger("change");
      });
    });
  }

  /** Sets each select `#node-input-<id>` that has no value (a property missing from the node) to its default. */
  function selectDefaults(defaults) {
    Object.keys(defaults).forEach(function (id) {
      var select = $("#node-input-" + id);
      if (!select.val()) select.val(defaults[id]);
    });
  }

  /** Shows `#node-input-idleSeconds`'s row only for the connection policy `idle`. */
  function connectionRows() {
    var connection = $("#node-input-connection");
    var toggle = function () {
      $("#node-input-idleSeconds").closest(".form-row").toggle(connection.val() === "idle");
    };
    connection.on("change", toggle);
    toggle();
  }

  return {
    t: t,
    errorText: errorText,
    addScan: addScan,
    addExplore: addExplore,
    addressInput: addressInput,
    validateAddress: validateAddress,
    addressLabel: addressLabel,
    wholeNumber: wholeNumber,
    transportAvailable: transportAvailable,
    defaultTransport: defaultTransport,
    NUS: NUS,
    validateUuid: validateUuid,
    validateDelimiter: validateDelimiter,
    validateSigFormat: validateSigFormat,
    validateWhen: validateWhen,
    idleConnection: idleConnection,
    formatOptions: formatOptions,
    addNusPreset: addNusPreset,
    connectionRows: connectionRows,
    selectDefaults: selectDefaults,
  };
})();
