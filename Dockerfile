# One image for the three HTTP services (gateway, read API, ack service); the
# ECS task's command picks the entry file. The services run TypeScript through
# tsx, a runtime dependency, so there is no separate build stage.
FROM node:22-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no runtime dependency needs an install script (tsx's esbuild
# binary arrives as an optional platform package).
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY . .
USER node
EXPOSE 3000 3001 3002
CMD ["node", "--import", "tsx", "gateway/main.ts"]
