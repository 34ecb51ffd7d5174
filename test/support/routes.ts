import type { TestStack } from './stack.js';

/** One method + path pattern the broker's Express router dispatches to a handler. */
export interface RegisteredRoute {
  method: string;
  path: string;
}

interface ExpressLayer {
  route?: { path: unknown; methods: Record<string, boolean> };
}

/**
 * Every method + path the running Express app would dispatch to a handler, read from its router (Express 5),
 * so a route added later is covered without anyone editing the tests that sweep them.
 */
export function registeredRoutes(stack: TestStack): RegisteredRoute[] {
  const app = stack.broker.getHttpAdapter().getInstance() as { router: { stack: ExpressLayer[] } };
  const routes: RegisteredRoute[] = [];
  for (const layer of app.router.stack) {
    if (!layer.route) continue;
    const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
    const methods = Object.keys(layer.route.methods).filter((method) => layer.route!.methods[method]);
    for (const path of paths) {
      if (typeof path !== 'string') throw new Error(`route with a non-string path: ${String(path)}`);
      // Nest mounts global middleware (request logging) as a catch-all that answers every HTTP method; an
      // endpoint names its method(s). A catch-all endpoint with a specific method stays in the table.
      if (/^\{?\/\*\w*\}?$/.test(path) && methods.length > 10) continue;
      for (const method of methods) routes.push({ method: method.toUpperCase(), path });
    }
  }
  return routes;
}
