const { benchPlcLatency } = await import('./plc.js');
const r = await benchPlcLatency(Number(process.env.N ?? 300));
console.log(JSON.stringify({ p50: r.p50Ms, p99: r.p99Ms, model: r.modelP50Ms, model99: r.modelP99Ms, adds: r.linkAddsMs, target: r.target }));
