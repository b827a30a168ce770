// A default Express app (case-insensitive routing, non-strict trailing slashes: Express's
// own defaults) with data an unauthenticated caller must never see. Tollgate's route
// matching is checked against what this app actually serves (tests/interop.rs).
import express from 'express';

const app = express();
app.get('/api/admin/users', (req, res) => res.json({ secret: 'admin-users', path: req.path }));
app.get('/reports', (req, res) => res.json({ secret: 'reports', path: req.path }));
app.get('/reports/:id', (req, res) => res.json({ secret: 'report', path: req.path }));
app.use((req, res) => res.json({ public: true, path: req.path }));

const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: server.address().port }));
});
