import type { Station } from '../../runtime/station.js';

/**
 * Ends what a test served, in the order `linegate run` ends it: the API first (no request reaches a
 * closing step), then the station's intake and drain, then its steps, then the history reader.
 */
export async function stopServed(s: { readonly server: { close(): Promise<void> }; readonly station: Station; readonly run: Promise<unknown>; readonly history?: { close(): Promise<void> } | undefined }): Promise<void> {
  await s.server.close();
  s.station.stop();
  await s.run.catch(() => undefined);
  await s.station.close();
  await s.history?.close();
}
