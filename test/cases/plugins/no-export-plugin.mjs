export default { manifest: {} };
