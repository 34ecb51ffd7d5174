import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.data/', 'coverage/', 'apps/web/dist/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Only libs/config reads the environment (STYLE.md: one validated config object).
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'read config from libs/config' },
      ],
    },
  },
  {
    files: ['libs/config/**', 'test/**', 'bench/**', 'apps/dev/**', 'jest.config.js'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // Tests read untyped JSON answers.
    files: ['test/**', '**/*.spec.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // The web UI runs in the browser: browser globals, and no Node ones.
    files: ['apps/web/**/*.{ts,tsx}'],
    languageOptions: {
      globals: {
        window: 'readonly',
        document: 'readonly',
        navigator: 'readonly',
        location: 'readonly',
        history: 'readonly',
        fetch: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        console: 'readonly',
        URL: 'readonly',
        URLSearchParams: 'readonly',
        process: 'off',
      },
    },
  },
  {
    files: ['libs/domain/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['../*'], message: 'libs/domain imports nothing of ours' },
            {
              group: ['@nestjs/*', 'typeorm', 'pg', 'bullmq', 'ioredis'],
              message: 'libs/domain does no I/O',
            },
          ],
        },
      ],
    },
  },
);
