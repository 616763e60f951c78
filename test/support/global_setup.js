// Jest globalSetup: the tests that load dist/ test what lib/ says (fresh_dist.js).
'use strict';

const path = require('node:path');
const { freshDist } = require('./fresh_dist');

module.exports = async function globalSetup() {
  freshDist(path.resolve(__dirname, '..', '..'));
};
