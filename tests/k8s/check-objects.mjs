// Offline check of rendered Kubernetes objects (tests/k8s/validate.sh).
//
//   node tests/k8s/check-objects.mjs FILE...
//
// Each FILE holds YAML documents (the output of `kubectl kustomize`). Every object is
//   1. validated against the Kubernetes OpenAPI schema of its apiVersion/kind with the
//      npm package kubernetes-models (types, required fields, enums, formats), and
//   2. checked for unknown fields: kubernetes-models' validators accept any extra key, so
//      a misspelled field (readinesProbe, minAvaliable) would pass step 1 and be dropped
//      silently by the API server. The known fields of each type are read from the
//      package's TypeScript declarations (generated from the same OpenAPI schema).
// Prints one line per object (`ok` or the failures) and exits 1 if any object failed,
// 2 for a usage or read error. An apiVersion/kind the package does not know is a failure.
// CHECK_OBJECTS_DEBUG=1 lists on stderr each declaration file read and its field count.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = path.join(here, "node_modules");

// ---- known fields, from the TypeScript declarations ---------------------------------

const declCache = new Map();

// The .d.ts file an import specifier of `fromFile` names.
function resolveDecl(fromFile, spec) {
  const bare = spec.replace(/\.js$/, "");
  const base = bare.startsWith(".") ? path.resolve(path.dirname(fromFile), bare) : path.join(nodeModules, bare);
  return base + ".d.ts";
}

// Parses a type expression of a property: a reference to another declaration file, an
// array or a string-keyed map of one, or a scalar (string, number, literal union, ...).
function parseType(text, imports) {
  const t = text.trim().replace(/;$/, "").trim();
  let m = /^Array<(.*)>$/.exec(t);
  if (m) return { array: parseType(m[1], imports) };
  m = /^\{\s*\[key: string\]:\s*(.*?);?\s*\}$/s.exec(t);
  if (m) return { map: parseType(m[1], imports) };
  if (imports.has(t)) return { ref: imports.get(t) };
  return { scalar: t };
}

// The fields of the first interface in `file`: Map name -> type, or null when the file
// declares an open type (an index signature, a type alias such as Quantity).
function declFields(file) {
  if (declCache.has(file)) return declCache.get(file);
  let fields = null;
  if (fs.existsSync(file)) {
    const text = fs.readFileSync(file, "utf8");
    const imports = new Map();
    for (const m of text.matchAll(/^import \{([^}]*)\} from "([^"]+)";$/gm)) {
      for (const name of m[1].split(",").map((s) => s.trim()).filter(Boolean)) {
        imports.set(name, resolveDecl(file, m[2]));
      }
    }
    const start = /^export interface \w+(?: extends [\w, ]+)? \{$/m.exec(text);
    if (start) {
      const body = text.slice(start.index + start[0].length, text.indexOf("\n}\n", start.index));
      // Drop the doc comments, then read the properties indented by four spaces.
      const lines = body.replace(/\/\*\*[\s\S]*?\*\//g, "").split("\n");
      fields = new Map();
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i];
        if (/^ {4}\[key: string\]/.test(line)) {
          fields = null;  // An open object: any key is fine.
          break;
        }
        const m = /^ {4}"([^"]+)"\??: (.*)$/.exec(line);
        if (!m) continue;
        let type = m[2];
        if (type.trim() === "{") {  // A multi-line map: read up to the closing brace.
          while (++i < lines.length && !/^ {4}\};?$/.test(lines[i])) type += " " + lines[i].trim();
          type += " }";
        }
        fields.set(m[1], parseType(type, imports));
      }
    }
  }
  declCache.set(file, fields);
  if (process.env.CHECK_OBJECTS_DEBUG) console.error(`decl ${fields === null ? (fs.existsSync(file) ? 'open' : 'MISSING') : fields.size} ${path.relative(nodeModules, file)}`);
  return fields;
}

function closest(word, candidates) {
  const distance = (a, b) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++) {
      for (let j = 1; j <= b.length; j++) {
        d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      }
    }
    return d[a.length][b.length];
  };
  let best = null;
  for (const c of candidates) {
    const k = distance(word.toLowerCase(), c.toLowerCase());
    if (k <= 3 && (best === null || k < best.k)) best = { c, k };
  }
  return best ? best.c : null;
}

// Appends to `errors` every key of `value` that its type does not declare.
function checkKnownKeys(value, type, where, errors) {
  if (value === null || value === undefined || type === undefined) return;
  if (type.array) {
    if (Array.isArray(value)) value.forEach((v, i) => checkKnownKeys(v, type.array, `${where}[${i}]`, errors));
    return;
  }
  if (type.map) {
    if (typeof value === "object" && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) checkKnownKeys(v, type.map, `${where}.${k}`, errors);
    }
    return;
  }
  if (!type.ref || typeof value !== "object" || Array.isArray(value)) return;
  const fields = declFields(type.ref);
  if (fields === null) return;
  for (const [k, v] of Object.entries(value)) {
    if (!fields.has(k)) {
      const hint = closest(k, fields.keys());
      errors.push(`${where}.${k}: unknown field${hint ? ` (did you mean "${hint}"?)` : ""}`);
      continue;
    }
    checkKnownKeys(v, fields.get(k), `${where}.${k}`, errors);
  }
}

// ---- per object -----------------------------------------------------------------------

// "apps/v1" + "Deployment" -> kubernetes-models/apps/v1/Deployment ("v1" is the core group).
function modelPath(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  if (!/^([a-z0-9.-]+\/)?v\d+(alpha\d+|beta\d+)?$/.test(apiVersion) || !/^[A-Z][A-Za-z0-9]*$/.test(kind)) return null;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

async function checkObject(obj) {
  const errors = [];
  const spec = modelPath(obj.apiVersion, obj.kind);
  if (spec === null) return [`apiVersion/kind missing or malformed (${obj.apiVersion}/${obj.kind})`];
  let Model;
  try {
    Model = (await import(spec))[obj.kind];
  } catch {
    Model = undefined;
  }
  if (typeof Model !== "function") return [`unknown apiVersion/kind ${obj.apiVersion}/${obj.kind} (not in kubernetes-models)`];
  // kustomize v5 wraps the base64 of generated Secrets at 76 columns; the API server's
  // decoder (Go's encoding/base64) ignores the line breaks, the schema's "byte" format not.
  const forSchema = structuredClone(obj);
  const base64Field = { Secret: "data", ConfigMap: "binaryData" }[obj.kind];
  if (base64Field) {
    const map = forSchema[base64Field];
    if (map && typeof map === "object") {
      for (const [k, v] of Object.entries(map)) if (typeof v === "string") map[k] = v.replace(/[\r\n]/g, "");
    }
  }
  try {
    new Model(forSchema).validate();
  } catch (e) {
    const details = Array.isArray(e.errors)
      ? e.errors.map((x) => `${x.instancePath || "/"}: ${x.message}${x.params ? " " + JSON.stringify(x.params) : ""}`)
      : [String(e.message || e)];
    errors.push(...details.map((d) => `schema: ${d}`));
  }
  const declFile = path.join(nodeModules, `${spec}.d.ts`);
  checkKnownKeys(obj, { ref: declFile }, "", errors);
  return errors.map((e) => e.replace(/^\./, ""));
}

async function main() {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: node check-objects.mjs FILE...");
    process.exit(2);
  }
  let failed = 0;
  let checked = 0;
  for (const file of files) {
    let docs;
    try {
      docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
    } catch (e) {
      console.error(`${file}: cannot read: ${e.message}`);
      process.exit(2);
    }
    for (const doc of docs) {
      if (doc.errors.length > 0) {
        console.log(`FAIL ${file}: YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
        failed++;
        continue;
      }
      const obj = doc.toJS();
      if (obj === null || obj === undefined) continue;
      const name = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
      const errors = typeof obj === "object" && !Array.isArray(obj) ? await checkObject(obj) : ["not a mapping"];
      checked++;
      if (errors.length === 0) {
        console.log(`ok   ${file}: ${name}`);
      } else {
        failed++;
        for (const e of errors) console.log(`FAIL ${file}: ${name}: ${e}`);
      }
    }
  }
  console.log(`${checked} objects checked, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}

await main();
