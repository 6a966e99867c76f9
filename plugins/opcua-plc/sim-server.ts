import { createHash, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { AddressSpace, OPCUAServer as Server, UAVariable } from 'node-opcua';
import { routeOpcuaLoggers, skipRsa15Diagnostic } from './opcua.js';
import type { RunPort, TagValue } from './sim-cycle.js';
import { namespaceOf, type SimSettings, type TypeName } from './sim-options.js';
import { waitForValue } from './sim-vision.js';
import type { TagName } from './tags.js';

/* How the simulated PLC builds its server and its tags; the PLC's behaviour is in sim.ts and sim-cycle.ts. */

// node-opcua's loggers routed and its W27 diagnostic skipped before it loads; required, not imported (see opcua.ts).
skipRsa15Diagnostic();
routeOpcuaLoggers();
const require = createRequire(import.meta.url);
const { DataType, MessageSecurityMode, MonitoredItem, OPCUACertificateManager, OPCUAServer, SecurityPolicy, Subscription, nodesets } = require('node-opcua') as typeof import('node-opcua');
/** node-opcua's own small base nodeset: the data types and the Server object a client reads, a few hundred nodes. */
const MINIMAL_NODESET = path.join(path.dirname(require.resolve('node-opcua-address-space/package.json')), 'nodesets/mini.Nodeset2.xml');

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

function defaultValue(type: TypeName): string | number | boolean {
  return type === 'Boolean' ? false : type === 'String' ? '' : 0;
}

/** The OPC UA server of one run: its PKI, its security offer, its users. */
export function createServer(o: SimSettings, pkiDir: string, port: number): Server {
  const sec = o.security;
  const certificateManager = new OPCUACertificateManager({ rootFolder: pkiDir, automaticallyAcceptUnknownCertificate: sec.automaticallyAcceptUnknownCertificate });
  // X509 user tokens are checked against their own PKI; left unset, node-opcua would make one in the home folder.
  const userCertificateManager = new OPCUACertificateManager({ rootFolder: path.join(pkiDir, 'user'), automaticallyAcceptUnknownCertificate: false });
  const users = (sec.users ?? []).map((u) => ({ name: u.username, hash: sha256(u.password) }));
  const wildcard = o.host === '0.0.0.0' || o.host === '::';
  // node-opcua's floor of 50 ms would dominate trigger -> result (a fast PLC publishes every 10-20 ms).
  // It is a static: it holds for every node-opcua server in this process, and the sim started last sets it.
  Subscription.minimumPublishingInterval = o.minPublishingIntervalMs;
  // The floor for items a client samples at a rate it names; also a static. Never raised: an item already
  // sampling faster would trip node-opcua's assertion when its timer is set again. At least 1 ms: no busy timer.
  MonitoredItem.minimumSamplingInterval = Math.min(MonitoredItem.minimumSamplingInterval, Math.max(1, o.minSamplingIntervalMs));
  return new OPCUAServer({
    port,
    host: o.host,
    // Advertise the address we listen on: the machine's FQDN may resolve to an interface we do not serve.
    ...(wildcard ? {} : { hostname: o.host }),
    nodeset_filename: [o.addressSpace === 'minimal' ? MINIMAL_NODESET : nodesets.standard],
    serverCertificateManager: certificateManager,
    userCertificateManager,
    serverInfo: { applicationUri: 'urn:linegate:plc-sim', productUri: 'linegate-plc-sim', applicationName: { text: 'linegate simulated PLC', locale: 'en' } },
    buildInfo: { productName: 'linegate simulated PLC', manufacturerName: 'linegate' },
    // Per server: what an item asking for sampling 0 on our tags is granted, and the window over which
    // node-opcua folds a tag's changes into one notification (50 ms unset: a trigger would wait for it).
    serverCapabilities: { minSupportedSampleRate: o.minSamplingIntervalMs },
    securityModes: sec.modes.map((m) => MessageSecurityMode[m]),
    securityPolicies: sec.policies.map((p) => SecurityPolicy[p]),
    allowAnonymous: sec.allowAnonymous,
    userManager: {
      // Hashes of equal length make the comparison constant-time whatever the password's length.
      isValidUser: (username: string, password: string): boolean => users.some((u) => u.name === username && timingSafeEqual(u.hash, sha256(password))),
    },
  });
}

/** Each tag as a writable variable, in the namespace its NodeId names; `initial`: the values a retentive restart kept. */
export function createTags(server: Server, options: SimSettings, initial?: ReadonlyMap<TagName, string | number | boolean>): Map<TagName, UAVariable> {
  const addressSpace = server.engine.addressSpace as AddressSpace;
  const own = addressSpace.getOwnNamespace();
  const folder = own.addFolder(addressSpace.rootFolder.objects, { browseName: 'PlcSim' });
  const vars = new Map<TagName, UAVariable>();
  for (const [tag, nodeId] of Object.entries(options.tags) as [TagName, string | undefined][]) {
    if (nodeId === undefined) continue;
    const ns = namespaceOf(nodeId);
    // Index 1 is the server's own namespace; a map in ns=3 (a Siemens server's usual index) gets placeholder namespaces up to 3.
    while (addressSpace.getNamespaceArray().length <= ns) addressSpace.registerNamespace(`urn:linegate:plc-sim:ns${addressSpace.getNamespaceArray().length}`);
    const type = options.types[tag];
    const v = addressSpace.getNamespace(ns).addVariable({
      componentOf: folder,
      nodeId,
      browseName: tag,
      dataType: DataType[type],
      value: { dataType: DataType[type], value: initial?.get(tag) ?? defaultValue(type) },
      accessLevel: 'CurrentRead | CurrentWrite',
      userAccessLevel: 'CurrentRead | CurrentWrite',
      // 0: monitored items are fed on every change, not sampled: a trigger reaches linegate at once.
      minimumSamplingInterval: 0,
    });
    vars.set(tag, v);
  }
  return vars;
}

/** One server's tags as a cycle uses them; every wait ends when `signal` (the server's life) aborts. */
export function runPort(vars: ReadonlyMap<TagName, UAVariable>, types: Readonly<Record<TagName, TypeName>>, signal: AbortSignal): RunPort {
  return {
    signal,
    has: (tag) => vars.has(tag),
    get: (tag) => vars.get(tag)?.readValue().value.value,
    set: (tag, value: TagValue) => void vars.get(tag)?.setValueFromSource({ dataType: DataType[types[tag]], value }),
    waitFor: (tag, pred, ms) => {
      const v = vars.get(tag);
      return v === undefined ? Promise.resolve('timeout') : waitForValue(v, pred, ms, signal);
    },
  };
}
