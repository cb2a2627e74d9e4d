// Parse and validate an AsyncAPI document with the official parser, resolving its file references
// (the Avro schemas in schemas/). Prints a JSON report: {valid, diagnostics, channels, messages}.
// Usage: node tools/asyncapi/validate.mjs docs/asyncapi.yaml
import { resolve } from "node:path";
import { Parser, fromFile } from "@asyncapi/parser";
import { AvroSchemaParser } from "@asyncapi/avro-schema-parser";

const path = resolve(process.argv[2]);
// With the Avro schema parser the referenced .avsc files are parsed and checked too.
const parser = new Parser({ schemaParsers: [AvroSchemaParser()] });
const { document, diagnostics } = await fromFile(parser, path).parse({
  source: path,
  validateOptions: { allowedSeverities: { warning: true, info: true, hint: true } },
});
const report = {
  valid: document !== undefined,
  diagnostics: diagnostics.map((d) => ({ severity: d.severity, code: d.code, message: d.message, path: d.path })),
  channels: {},
  messages: {},
};
if (document) {
  for (const channel of document.channels()) {
    report.channels[channel.id()] = channel.address();
  }
  for (const message of document.components().messages()) {
    const schema = message.payload();
    report.messages[message.id()] = {
      schemaFormat: message.schemaFormat(),
      payloadType: schema ? schema.type() : null,
      payloadFields: schema && schema.properties() ? Object.keys(schema.properties()) : [],
      headers: message.hasHeaders() ? Object.keys(message.headers().properties() ?? {}) : [],
    };
  }
}
process.stdout.write(JSON.stringify(report, null, 2) + "\n");
process.exit(report.valid ? 0 : 1);
