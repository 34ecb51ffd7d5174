import type { ParameterObject, SchemaObject } from '@nestjs/swagger';
import { getMetadataStorage } from 'class-validator';

/** What class-validator records per decorator (its ValidationMetadata, the fields read here). */
interface Rule {
  type: string;
  name?: string;
  propertyName: string;
  constraints?: unknown[];
  each?: boolean;
}

export type DtoClass = abstract new (...args: never[]) => unknown;

/** The OpenAPI reference to a component schema. */
export function schemaRef(name: string): { $ref: string } {
  return { $ref: `#/components/schemas/${name}` };
}

/** A `Matches` pattern as an OpenAPI (ECMA-262) pattern string. */
function patternOf(constraints: unknown[] | undefined): string | undefined {
  const pattern = constraints?.[0];
  if (pattern instanceof RegExp) return pattern.source;
  return typeof pattern === 'string' ? pattern : undefined;
}

function enumOf(rule: Rule): unknown[] {
  const [values] = rule.constraints ?? [];
  if (rule.name === 'isEnum') return Object.values(values as object);
  return Array.isArray(values) ? values : [];
}

/** Applies one class-validator rule to a value schema (the item schema when the rule is `each`). */
function applyRule(schema: SchemaObject, rule: Rule): void {
  const [first] = rule.constraints ?? [];
  switch (rule.name) {
    case 'isString':
      schema.type = 'string';
      break;
    case 'isInt':
      schema.type = 'integer';
      break;
    case 'isBoolean':
      schema.type = 'boolean';
      break;
    case 'isObject':
      schema.type = 'object';
      break;
    case 'isArray':
      schema.type = 'array';
      break;
    case 'isUuid':
      Object.assign(schema, { type: 'string', format: 'uuid' });
      break;
    case 'isDateString':
    case 'isRfc3339DateTime':
      Object.assign(schema, { type: 'string', format: 'date-time' });
      break;
    case 'maxLength':
      schema.maxLength = first as number;
      break;
    case 'isNotEmpty':
      schema.minLength = Math.max(schema.minLength ?? 0, 1);
      break;
    case 'min':
      schema.minimum = first as number;
      break;
    case 'max':
      schema.maximum = first as number;
      break;
    case 'matches':
      schema.pattern = patternOf(rule.constraints);
      break;
    case 'isIn':
    case 'isEnum':
      schema.enum = enumOf(rule);
      if (schema.enum.every((value) => typeof value === 'string')) schema.type = 'string';
      break;
    case 'equals':
      schema.enum = [first];
      if (typeof first === 'string') schema.type = 'string';
      break;
  }
}

/**
 * Request schemas read from the DTOs' own class-validator decorators, so that the document states exactly what
 * the ValidationPipe enforces (types, lengths, patterns, enums, required fields, nesting) without a second set
 * of `@ApiProperty` annotations to keep in step. Nested DTOs become component schemas of their own.
 */
export class DtoSchemas {
  private readonly schemas: Record<string, SchemaObject> = {};

  /** All component schemas built so far. */
  all(): Record<string, SchemaObject> {
    return this.schemas;
  }

  /** A reference to `dto`'s schema, built (with its nested DTOs) on first use. */
  refFor(dto: DtoClass): { $ref: string } {
    if (!(dto.name in this.schemas)) {
      this.schemas[dto.name] = { type: 'object' };
      this.schemas[dto.name] = this.objectSchema(dto);
    }
    return schemaRef(dto.name);
  }

  /** A query DTO as `in: query` parameters. */
  queryParameters(dto: DtoClass): ParameterObject[] {
    const schema = this.objectSchema(dto);
    return Object.entries(schema.properties ?? {}).map(([name, property]) => ({
      name,
      in: 'query',
      required: schema.required?.includes(name) ?? false,
      schema: property as SchemaObject,
    }));
  }

  private objectSchema(dto: DtoClass): SchemaObject {
    const rules = getMetadataStorage().getTargetValidationMetadatas(dto, '', true, false) as Rule[];
    const byProperty = new Map<string, Rule[]>();
    for (const rule of rules)
      byProperty.set(rule.propertyName, [...(byProperty.get(rule.propertyName) ?? []), rule]);
    const properties: Record<string, SchemaObject | { $ref: string }> = {};
    const required: string[] = [];
    for (const [name, propertyRules] of byProperty) {
      properties[name] = this.propertySchema(dto, name, propertyRules);
      if (!propertyRules.some((rule) => rule.type === 'conditionalValidation')) required.push(name);
    }
    // The global ValidationPipe forbids unknown properties (forbidNonWhitelisted).
    const schema: SchemaObject = { type: 'object', properties, additionalProperties: false };
    if (required.length > 0) schema.required = required;
    return schema;
  }

  private propertySchema(dto: DtoClass, name: string, rules: Rule[]): SchemaObject | { $ref: string } {
    if (rules.some((rule) => rule.type === 'nestedValidation')) {
      const nested = Reflect.getMetadata('design:type', dto.prototype as object, name) as
        DtoClass | undefined;
      if (nested !== undefined && nested !== Object && nested !== Array) return this.refFor(nested);
    }
    const schema: SchemaObject = {};
    const items: SchemaObject = {};
    for (const rule of rules) applyRule(rule.each ? items : schema, rule);
    if (rules.some((rule) => rule.name === 'arrayMaxSize')) {
      schema.maxItems = rules.find((rule) => rule.name === 'arrayMaxSize')!.constraints![0] as number;
    }
    if (schema.type === 'array' || Object.keys(items).length > 0) {
      schema.type = 'array';
      schema.items = items;
    }
    return schema;
  }
}
