import { LinegateError } from '../errors.js';

/**
 * The first file part of a multipart/form-data body (field `image`, else the first with a
 * filename). The body is already size-limited and buffered, so a small parser over the buffer
 * beats a streaming dependency for one upload route.
 */
export function imageFromMultipart(body: Buffer, contentType: string, what: string): { readonly data: Buffer; readonly type: string | undefined } {
  const boundary = /boundary=(?:"([^"]{1,70})"|([^;\s]{1,70}))/i.exec(contentType);
  const b = boundary?.[1] ?? boundary?.[2];
  if (b === undefined) throw new LinegateError('LG_ERR_API_BAD_REQUEST', [what, 'multipart/form-data without a boundary']);
  const delimiter = Buffer.from(`--${b}`);
  const parts: { headers: string; data: Buffer }[] = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break; // the closing delimiter
    const headersEnd = body.indexOf('\r\n\r\n', start);
    const next = body.indexOf(Buffer.from(`\r\n--${b}`), start);
    if (headersEnd < 0 || next < 0 || headersEnd > next) break;
    parts.push({ headers: body.subarray(start, headersEnd).toString('latin1'), data: body.subarray(headersEnd + 4, next) });
    at = next + 2;
  }
  const named = (h: string, n: string): boolean => new RegExp(`name="${n}"`, 'i').test(h);
  const part = parts.find((p) => named(p.headers, 'image')) ?? parts.find((p) => /filename="/i.test(p.headers));
  if (part === undefined) throw new LinegateError('LG_ERR_API_BAD_REQUEST', [what, 'the multipart body has no image part (a field named "image", or a file)']);
  const type = /content-type:\s*([^\r\n;]+)/i.exec(part.headers)?.[1]?.trim().toLowerCase();
  return { data: part.data, type };
}
