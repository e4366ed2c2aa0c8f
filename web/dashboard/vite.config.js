import { defineConfig } from 'vite';

// The page is served at /dashboard/ by the API server (internal/dashboard).
export default defineConfig({
  base: '/dashboard/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: '../../internal/dashboard/dist/app',
    emptyOutDir: true,
    target: 'es2020',
    chunkSizeWarningLimit: 400,
  },
});
