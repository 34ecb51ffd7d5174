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
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'read config from libs/config' }],
    },
  },
  {
    files: ['libs/config/**', 'test/**', 'bench/**', 'apps/dev/**', 'jest.config.js'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    files: ['libs/domain/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['../*', '!./*'], message: 'libs/domain imports nothing of ours' }, '@nestjs/*', 'typeorm', 'pg', 'bullmq', 'ioredis'] }],
    },
  },
);
