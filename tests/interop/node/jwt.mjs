// HS256 JSON Web Tokens for the interop clients, signed with node:crypto's
// HMAC: neither the broker's code nor PyJWT, a third signer.

import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";

const b64url = (data) => Buffer.from(data).toString("base64url");

/** An HS256 JWT of `claims` signed with `secret`. */
export function hs256(claims, secret) {
  const signed = `${b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }))}.${b64url(JSON.stringify(claims))}`;
  return `${signed}.${createHmac("sha256", secret).update(signed).digest("base64url")}`;
}

/** The broker's HS256 secret: the file's text, trailing newlines trimmed (as the broker reads it). */
export const readSecret = (file) => readFileSync(file, "utf8").replace(/[\r\n]+$/, "");

/** A token for `sub` entitled to `syms`, valid for `ttlS` seconds. */
export const userToken = (secret, sub, syms, ttlS) =>
  hs256({ sub, syms, exp: Math.floor(Date.now() / 1000) + ttlS }, secret);
